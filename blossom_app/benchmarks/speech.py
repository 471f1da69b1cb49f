"""What MELD and IEMOCAP share: utterances with audio and a transcript, their
features and encoders (the paper uses the same network for both)."""

from dataclasses import replace
from functools import partial

from blossom_app import APP_DIR
from blossom_app.benchmarks.audio import LogMel
from blossom_app.benchmarks.har import har_encoder
from blossom_app.benchmarks.task import EncoderByModality, ModalitySpec, Task
from blossom_app.benchmarks.text import (
    HashedTokens,
    MobileBertEmbeddings,
    sequence_encoder,
    token_encoder,
)

#: Utterances are cut or padded to 10 s: 1000 frames of 10 ms, as the reference.
LOG_MEL = LogMel(n_mels=80, frames=1000, seconds=10.0)
HASHED = HashedTokens(length=32, buckets=4096)
MOBILEBERT = MobileBertEmbeddings(length=32)
EMBED_DIM = 64


def audio_modality() -> ModalitySpec:
    """Log-mel frames x 80 of the utterance's clip."""
    return ModalitySpec(
        "audio",
        LOG_MEL.shape,
        features=LOG_MEL,
        preprocessing=LOG_MEL.description,
    )


def text_modality(features: HashedTokens | MobileBertEmbeddings) -> ModalitySpec:
    """The transcript as hashed word ids or as MobileBERT states."""
    return ModalitySpec(
        "text",
        features.shape,
        features=features,
        preprocessing=features.description,
        normalize=isinstance(features, MobileBertEmbeddings),
    )


#: Audio: the HAR encoder over 80 mel channels with a 64-unit GRU (the paper's
#: Conv1d stack + GRU); text: an embedding + GRU over hashed ids, or the
#: paper's GRU over MobileBERT states.
ENCODERS = EncoderByModality(
    (("audio", partial(har_encoder, hidden=EMBED_DIM)), ("text", token_encoder))
)
MOBILEBERT_ENCODERS = EncoderByModality(
    (("audio", partial(har_encoder, hidden=EMBED_DIM)), ("text", sequence_encoder))
)


def with_mobilebert(task: Task) -> Task:
    """``task`` with MobileBERT states for text (named ``<name>-mobilebert``),
    with ``task``'s presets (``conf/<name>/``: the paper's recipe)."""
    return replace(
        task,
        name=f"{task.name}-mobilebert",
        presets=APP_DIR / "conf" / task.name,
        modalities=(audio_modality(), text_modality(MOBILEBERT)),
        encoder=MOBILEBERT_ENCODERS,
    )


def speech_task(**fields: object) -> Task:
    """A task of utterances (audio and transcript) with the paper's speech
    network (fusion to 128, head 128-64); ``fields``: the dataset's own
    ``Task`` fields (name, classes, source, label and group columns)."""
    return Task(
        modalities=(audio_modality(), text_modality(HASHED)),
        encoder=ENCODERS,
        embed_dim=EMBED_DIM,
        fusion_dim=128,
        head_hidden=64,
        **fields,
    )
