"""``avmnist``: AV-MNIST, a handwritten digit (image) paired with a spoken
one (audio), 10 classes.

Hub dataset ``BLOSSOM-framework/AV-MNIST``: ``image`` (a Hugging Face Image
column, 28 x 28 gray), ``audio`` (an Audio column), ``label`` (0-9). No
speaker column is known, so there is no natural partition. Sources:
``benchmarks/SOURCES.md``. Features: the image scaled and standardized with
MNIST's mean and std (torchvision), the audio as a 1 x 64 x 141 log-mel
spectrogram of 1.5 s (windows of 1024 and hops of 512 samples at 48 kHz, the
reference's, as durations). Model: the paper's CNN image encoder (to 32) and
spectrogram encoder (to 256), attention fusion to 128, head 128-256-128-10;
the paper reports accuracy.
"""

from blossom_app.benchmarks.audio import LogMel, spectrogram_encoder
from blossom_app.benchmarks.image import ImagePixels, image_encoder
from blossom_app.benchmarks.task import EncoderByModality, ModalitySpec, Task

PIXELS = ImagePixels(1, 28, 28, mean=(0.1307,), std=(0.3081,))
LOG_MEL = LogMel(
    n_mels=64,
    frames=141,
    seconds=1.5,
    window_s=1024 / 48000,
    hop_s=512 / 48000,
    as_image=True,
)

AVMNIST = Task(
    name="avmnist",
    modalities=(
        ModalitySpec(
            "audio",
            LOG_MEL.shape,
            features=LOG_MEL,
            preprocessing=LOG_MEL.description,
            embed_dim=256,
        ),
        ModalitySpec(
            "image",
            PIXELS.shape,
            features=PIXELS,
            preprocessing=PIXELS.description,
            embed_dim=32,
        ),
    ),
    class_names=tuple(str(digit) for digit in range(10)),
    encoder=EncoderByModality(
        (("audio", spectrogram_encoder), ("image", image_encoder))
    ),
    embed_dim=32,
    fusion_dim=128,
    head_hidden=(256, 128),
    source="BLOSSOM-framework/AV-MNIST",
)
