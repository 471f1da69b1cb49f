"""Text inputs: hashed word ids (torch alone, the default) or MobileBERT
embeddings (the paper's; the optional ``text`` extra and a hub download), and
the encoders of each.

Hashed ids need no download: words (lower-cased letters, digits and
apostrophes) are hashed (CRC-32) into ``buckets - 1`` ids, 0 pads, and the
encoder learns an embedding per id. MobileBERT (``google/mobilebert-uncased``,
as the reference implementation) gives ``length x 512`` hidden states that a
GRU encodes; it needs ``pip install -e ".[text]"`` and the model from the hub
(or its local copy in the Hugging Face cache).
"""

import re
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

from blossom_app.benchmarks.task import ModalitySpec
from blossom_app.errors import DataError

WORD = re.compile(r"[a-z0-9']+")
MOBILEBERT = "google/mobilebert-uncased"


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise DataError(f"A text value must be a string; found {type(value).__name__}.")
    return value


@dataclass(frozen=True)
class HashedTokens:
    """A text -> its first ``length`` words as hashed ids (float32, 0-padded)."""

    length: int = 32
    buckets: int = 4096

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    @property
    def description(self) -> str:
        return (
            f"hashed word ids ({self.length}): the lower-cased text's words "
            f"[a-z0-9']+, each crc32(word) % {self.buckets - 1} + 1, zero-padded "
            "(blossom_app.benchmarks.text.HashedTokens)"
        )

    def __call__(self, value: object) -> np.ndarray:
        words = WORD.findall(_text(value).lower())[: self.length]
        ids = np.zeros(self.length, dtype=np.float32)
        ids[: len(words)] = [
            zlib.crc32(word.encode()) % (self.buckets - 1) + 1 for word in words
        ]
        return ids


class TokenEncoder(nn.Module):
    """Embedding of hashed ids → GRU → mean over the non-padding positions."""

    def __init__(self, buckets: int, width: int = 64, embed_dim: int = 64) -> None:
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, width, padding_idx=0)
        self.gru = nn.GRU(width, embed_dim, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long().clamp(0, self.buckets - 1)  # float ids from a device
        outputs, _ = self.gru(self.embed(ids))
        present = (ids > 0).unsqueeze(-1).to(outputs.dtype)
        return (outputs * present).sum(dim=1) / present.sum(dim=1).clamp(min=1)


def token_encoder(spec: ModalitySpec) -> nn.Module:
    """The encoder of hashed word ids (``spec.features`` is a HashedTokens)."""
    return TokenEncoder(spec.features.buckets, embed_dim=spec.embed_dim or 64)


@dataclass(frozen=True)
class MobileBertEmbeddings:
    """A text -> MobileBERT's last hidden states for its first ``length``
    tokens (padded), ``length x 512`` (the reference implementation's text
    features)."""

    length: int = 32

    @property
    def shape(self) -> tuple[int, int]:
        return (self.length, 512)

    @property
    def description(self) -> str:
        return (
            f"{MOBILEBERT} last hidden states, {self.length} tokens (padded or "
            "truncated) x 512 (blossom_app.benchmarks.text.MobileBertEmbeddings)"
        )

    def __call__(self, value: object) -> np.ndarray:
        tokenizer, model = _mobilebert()
        tokens = tokenizer(
            _text(value),
            padding="max_length",
            truncation=True,
            max_length=self.length,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = model(**tokens).last_hidden_state[0]
        return hidden.numpy().astype(np.float32)


@cache
def _mobilebert() -> tuple[object, nn.Module]:
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise DataError(
            "MobileBERT text features need the 'text' extra: pip install -e "
            '".[text]" (or pip install transformers). The dataset without '
            "'-mobilebert' uses hashed word ids and needs nothing more."
        ) from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(MOBILEBERT)
        model = AutoModel.from_pretrained(MOBILEBERT).eval()
    except OSError as error:
        raise DataError(
            f"Could not fetch {MOBILEBERT} from the Hugging Face hub ({error}). "
            "Download it once where the hub is reachable (it is then read from "
            "the Hugging Face cache, also with HF_HUB_OFFLINE=1), or use the "
            "dataset without '-mobilebert' (hashed word ids, no download)."
        ) from error
    return tokenizer, model


class SequenceEncoder(nn.Module):
    """GRU over ``batch x length x features`` → mean over time (the paper's
    text encoder on MobileBERT states)."""

    def __init__(self, features: int, embed_dim: int = 64) -> None:
        super().__init__()
        self.gru = nn.GRU(features, embed_dim, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(x)
        return outputs.mean(dim=1)


def sequence_encoder(spec: ModalitySpec) -> nn.Module:
    """The GRU encoder for a ``length x features`` modality."""
    return SequenceEncoder(spec.shape[-1], spec.embed_dim or 64)
