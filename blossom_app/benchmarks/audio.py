"""Audio inputs: decode a stored clip, compute its log-mel spectrogram (torch
alone), and the encoder of such spectrograms seen as an image.

The benchmarks' audio columns are Hugging Face ``Audio`` values. The loader
reads them undecoded (``{"bytes", "path"}``: no ``torchcodec`` needed) and
``decode_audio`` reads WAV with the standard library, or any format with
``soundfile`` when it is installed; already decoded values (``{"array",
"sampling_rate"}``) are used as they are, and so are plain arrays of float
samples, at the rate the feature declares (``LogMel(sample_rate=...)``).
Spectrograms are computed at the clip's own sampling rate with windows and
hops of fixed duration, so clips recorded at different rates give the same
frames without resampling.

``LogMelFrontEnd`` is the same log-mel computation as a torch module on a batch
of raw samples at the declared rate, built from operators ONNX maps one to one
(Pad, Conv, MatMul, Log, ReduceMax): exported in front of the model, it lets a
device without torch feed recorded samples (``docs/datasets.md``).
"""

import io
import math
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from blossom_app.benchmarks.front_end import DeviceInput
from blossom_app.benchmarks.task import ModalitySpec
from blossom_app.errors import DataError

#: Power below this (relative to 1) is clipped before taking decibels.
POWER_FLOOR = 1e-10
#: Largest difference (dB) accepted between the exported log-mel front end and
#: ``LogMel``: float32 DFT by convolution against torch's FFT (measured on the
#: probes: see tests/test_front_end.py).
FRONT_END_TOLERANCE_DB = 0.01


def decode_audio(value: object, rate: int = 0) -> tuple[np.ndarray, int]:
    """``(samples, sampling_rate)`` of one stored clip, mono float32 in [-1, 1]
    for integer WAV; DataError saying what was found and what is read. A clip
    stored as a plain array of samples (``time``, or ``time x channels``)
    carries no rate: ``rate`` is it."""
    if isinstance(value, dict) and value.get("array") is not None:
        samples = np.asarray(value["array"], dtype=np.float32)
        return _mono(samples, channels_last=False), int(value["sampling_rate"])
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        data = value.get("bytes") or Path(value["path"]).read_bytes()
        if data[:4] == b"RIFF":
            return _read_wav(data)
        return _read_other(data)
    if isinstance(value, list | tuple | np.ndarray):
        if rate <= 0:
            raise DataError(
                "An audio value is a plain array of samples, which carries no "
                "sampling rate: declare it, e.g. LogMel(..., sample_rate=8000)."
            )
        return _mono(np.asarray(value, dtype=np.float32), channels_last=True), rate
    raise DataError(
        f"An audio value must be a dict with 'bytes' or 'path' (a Hugging Face "
        f"Audio column), with 'array' and 'sampling_rate', or an array of samples "
        f"(with the feature's sample_rate); found {type(value).__name__}."
    )


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as clip:
        width, channels = clip.getsampwidth(), clip.getnchannels()
        rate, frames = clip.getframerate(), clip.readframes(clip.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(frames, np.uint8).astype(np.float32) - 128) / 128
    elif width in (2, 4):
        kind = np.int16 if width == 2 else np.int32
        samples = np.frombuffer(frames, kind).astype(np.float32) / -np.iinfo(kind).min
    else:
        raise DataError(f"WAV with {8 * width}-bit samples is not supported.")
    return _mono(samples.reshape(-1, channels), channels_last=True), rate


def _read_other(data: bytes) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError as error:
        raise DataError(
            "An audio clip is not WAV. Install 'soundfile' (pip install soundfile) "
            "to read FLAC, OGG and other formats, or store the clips as WAV."
        ) from error
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return _mono(samples, channels_last=True), int(rate)


def _mono(samples: np.ndarray, channels_last: bool) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=1 if channels_last else 0).astype(np.float32)


@cache
def mel_filters(n_fft: int, n_mels: int, rate: int) -> torch.Tensor:
    """``(n_fft // 2 + 1) x n_mels`` triangular filters, evenly spaced on the
    HTK mel scale from 0 Hz to ``rate / 2``, unnormalized (computed once per
    size and rate; read-only)."""
    frequencies = torch.linspace(0, rate / 2, n_fft // 2 + 1)
    top_mel = 2595.0 * math.log10(1 + rate / 2 / 700.0)
    edges_mel = torch.linspace(0.0, top_mel, n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1)
    rising = (frequencies[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - frequencies[:, None]) / (edges[2:] - edges[1:-1])
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


@dataclass(frozen=True)
class LogMel:
    """A clip -> its log-mel spectrogram in decibels, ``frames x n_mels``
    (``1 x n_mels x frames`` with ``as_image``).

    The clip is cut or zero-padded to ``seconds``; frames use a Hann window of
    ``window_s`` every ``hop_s`` (centred), power spectra, ``n_mels`` mel
    bands, ``10 log10`` clipped ``top_db`` below the clip's peak; ``frames``
    cuts or pads (with the floor) the frame count, which rounding can move by
    one at other rates. ``sample_rate``: the rate of clips stored as plain
    arrays of float samples (which carry none; other clips carry their own),
    and of the samples an exported model takes: with it, LogMel is a front
    end (``front_end.py``) and the ONNX graph computes the spectrogram.
    """

    n_mels: int
    frames: int
    seconds: float
    window_s: float = 0.025
    hop_s: float = 0.010
    top_db: float = 80.0
    as_image: bool = False
    sample_rate: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        if self.as_image:
            return (1, self.n_mels, self.frames)
        return (self.frames, self.n_mels)

    @property
    def description(self) -> str:
        layout = "1 x mels x frames" if self.as_image else "frames x mels"
        return (
            f"log-mel spectrogram ({layout}): mono clip cut or zero-padded to "
            f"{self.seconds} s, Hann window {self.window_s * 1000:g} ms, hop "
            f"{self.hop_s * 1000:g} ms, {self.n_mels} HTK mel bands 0 Hz to half "
            f"the sampling rate, power in dB clipped {self.top_db:g} dB below the "
            f"peak, {self.frames} frames (blossom_app.benchmarks.audio.LogMel)"
        )

    def device_input(self) -> DeviceInput | None:
        """Raw samples at ``sample_rate``; None without one."""
        if self.sample_rate <= 0:
            return None
        length = round(self.seconds * self.sample_rate)
        return DeviceInput(
            shape=(length,),
            layout="batch x samples",
            description=(
                f"mono float samples in [-1, 1] at {self.sample_rate} Hz, {length} "
                f"per clip ({self.seconds:g} s: cut longer clips, zero-pad shorter "
                "ones)"
            ),
            tolerance=FRONT_END_TOLERANCE_DB,
        )

    def module(self) -> "LogMelFrontEnd":
        return LogMelFrontEnd(self)

    def probe(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Clips of a few tones in noise, some shorter than ``seconds``
        (zero-padded), at ``sample_rate``."""
        spec = self.device_input()
        assert spec is not None, "a probe needs the sample_rate"
        (length,) = spec.shape
        time = np.arange(length) / self.sample_rate
        clips = np.zeros((count, length), dtype=np.float32)
        for clip in clips:
            tones = rng.uniform(50, self.sample_rate / 2.5, size=3)
            wave_ = sum(np.sin(2 * np.pi * f * time) for f in tones) / 4
            clip[:] = wave_ + 0.05 * rng.standard_normal(length)
            clip[rng.integers(length // 2, length + 1) :] = 0.0
        return clips

    def as_stored(self, example: np.ndarray) -> np.ndarray:
        """Samples are stored as they are fed."""
        return example

    def __call__(self, value: object) -> np.ndarray:
        samples, rate = decode_audio(value, self.sample_rate)
        length = round(self.seconds * rate)
        clip = torch.zeros(length)
        kept = torch.from_numpy(np.ascontiguousarray(samples[:length]))
        clip[: len(kept)] = kept
        n_fft = max(2, round(self.window_s * rate))
        spectrum = torch.stft(
            clip,
            n_fft=n_fft,
            hop_length=max(1, round(self.hop_s * rate)),
            window=torch.hann_window(n_fft),
            return_complex=True,
        )  # freq x frames
        power = spectrum.abs().pow(2).T @ mel_filters(n_fft, self.n_mels, rate)
        decibels = 10 * torch.log10(torch.clamp(power, min=POWER_FLOOR))
        decibels = torch.maximum(decibels, decibels.max() - self.top_db)
        out = torch.full((self.frames, self.n_mels), float(decibels.min()))
        count = min(self.frames, len(decibels))
        out[:count] = decibels[:count]
        out = out.T.unsqueeze(0) if self.as_image else out
        return out.numpy().astype(np.float32)


class LogMelFrontEnd(nn.Module):
    """``LogMel`` on ``batch x samples`` at its ``sample_rate``, as one graph.

    The STFT is a strided convolution whose kernels are the Hann-windowed
    DFT's cosines and sines (``torch.stft``'s centred frames, reflect-padded);
    the rest is ``LogMel``'s arithmetic per clip. Every size is fixed by the
    LogMel, so the graph has no data-dependent shapes.
    """

    def __init__(self, log_mel: LogMel) -> None:
        super().__init__()
        rate = log_mel.sample_rate
        n_fft = max(2, round(log_mel.window_s * rate))
        self.log_mel = log_mel
        self.hop = max(1, round(log_mel.hop_s * rate))
        self.pad = n_fft // 2
        self.bins = n_fft // 2 + 1
        computed = 1 + round(log_mel.seconds * rate) // self.hop  # centred frames
        self.kept = min(log_mel.frames, computed)
        angle = (
            2 * math.pi * torch.outer(torch.arange(self.bins), torch.arange(n_fft))
        ).double() / n_fft
        window = torch.hann_window(n_fft, dtype=torch.float64)
        kernels = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])
        self.register_buffer("dft", kernels.float().unsqueeze(1), persistent=False)
        self.register_buffer(
            "mel", mel_filters(n_fft, log_mel.n_mels, rate).clone(), persistent=False
        )

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        log_mel = self.log_mel
        padded = functional.pad(samples.unsqueeze(1), (self.pad, self.pad), "reflect")
        spectrum = functional.conv1d(padded, self.dft, stride=self.hop)
        real, imag = spectrum[:, : self.bins], spectrum[:, self.bins :]
        power = (real * real + imag * imag).transpose(1, 2) @ self.mel
        decibels = 10 * torch.log10(torch.clamp(power, min=POWER_FLOOR))
        peak = decibels.amax(dim=(1, 2), keepdim=True)
        decibels = torch.maximum(decibels, peak - log_mel.top_db)
        decibels = decibels[:, : self.kept]
        if self.kept < log_mel.frames:
            floor = decibels.amin(dim=(1, 2), keepdim=True)
            padding = floor.repeat(1, log_mel.frames - self.kept, log_mel.n_mels)
            decibels = torch.cat([decibels, padding], dim=1)
        return decibels.transpose(1, 2).unsqueeze(1) if log_mel.as_image else decibels


class SpectrogramEncoder(nn.Module):
    """Four strided convolutions (1→8 k5, 8→16, 16→32, 32→64 k3, stride 2,
    ReLU), global average pooling, Linear(64→``embed_dim``).

    Input ``batch x 1 x mels x frames``. The paper's AV-MNIST audio encoder,
    without its BatchNorm layers (their running statistics would be averaged
    across clients with different data).
    """

    def __init__(self, channels: int = 1, embed_dim: int = 256) -> None:
        super().__init__()
        widths = (channels, 8, 16, 32, 64)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            kernel = 5 if i == 0 else 3
            layers += [
                nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2),
                nn.ReLU(),
            ]
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.project = nn.Linear(widths[-1], embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.conv(x))


def spectrogram_encoder(spec: ModalitySpec) -> nn.Module:
    """The spectrogram encoder for a ``channels x mels x frames`` modality."""
    return SpectrogramEncoder(spec.shape[0], spec.embed_dim or 256)
