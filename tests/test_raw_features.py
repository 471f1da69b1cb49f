"""Audio and images stored as raw arrays go through the same feature helpers as
the hub formats: ``LogMel(sample_rate=...)`` for float samples, and
``ImagePixels(stored=...)`` for flat, HW or HWC pixel arrays."""

import numpy as np
import pytest
from PIL import Image

from blossom_app.benchmarks.audio import LogMel
from blossom_app.benchmarks.image import ImagePixels
from blossom_app.errors import DataError

RATE = 8000


def test_float_samples_at_the_declared_rate_are_a_decoded_clip():
    samples = np.sin(np.linspace(0, 400 * np.pi, RATE // 4)).astype(np.float32)
    log_mel = LogMel(n_mels=16, frames=20, seconds=0.25, sample_rate=RATE)
    raw = log_mel(samples.tolist())  # as a parquet list column holds it
    decoded = log_mel({"array": samples, "sampling_rate": RATE})
    assert raw.shape == (20, 16) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw, decoded)
    with pytest.raises(DataError, match="sample_rate=8000"):
        LogMel(n_mels=16, frames=20, seconds=0.25)(samples.tolist())


@pytest.mark.parametrize(
    ("layout", "stored"), [((64,), (8, 8)), ((8, 8), (8, 8)), ((8, 8, 1), (8, 8, 1))]
)
def test_a_gray_pixel_array_is_the_image_it_stores(layout, stored):
    """Flat, HW or HWC values, as the declared shape reads them."""
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)
    from_image = ImagePixels(1, 8, 8, (0.5,), (0.25,))(Image.fromarray(pixels))
    as_floats = (pixels / 255.0).reshape(layout).tolist()
    features = ImagePixels(1, 8, 8, (0.5,), (0.25,), stored=stored, pixel_max=1.0)
    np.testing.assert_allclose(features(as_floats), from_image, atol=1e-5)


def test_an_rgb_array_becomes_gray_as_pil_converts_it_and_is_resized():
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    gray = ImagePixels(1, 4, 4, (0.0,), (1.0,))
    from_image = gray(Image.fromarray(pixels, "RGB"))
    from_array = ImagePixels(1, 4, 4, (0.0,), (1.0,), stored=(8, 8, 3))(pixels)
    assert from_array.shape == (1, 4, 4)
    np.testing.assert_allclose(from_array, from_image, atol=2 / 255)


def test_an_array_image_without_or_against_its_declared_shape_says_so():
    with pytest.raises(DataError, match=r"stored=\(8, 8\)"):
        ImagePixels(1, 8, 8, (0.0,), (1.0,))([0.0] * 64)
    with pytest.raises(DataError, match=r"63 values does not have .* \(8, 8\)"):
        ImagePixels(1, 8, 8, (0.0,), (1.0,), stored=(8, 8))([0.0] * 63)
