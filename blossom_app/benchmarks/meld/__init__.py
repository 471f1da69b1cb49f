"""``meld``: MELD, utterances of the TV series Friends: audio and transcript,
4 emotions (anger, joy, neutral, sadness; the others are left out).

Hub dataset ``BLOSSOM-framework/MELD``: ``audio`` (a Hugging Face Audio
column), ``text`` (the transcript), ``emotion`` (a name, or a class id of the
four), ``speaker`` (the natural partition). Sources:
``benchmarks/SOURCES.md``. Features: log-mel 1000 x 80 (``speech.py``) and
hashed word ids; ``meld-mobilebert`` takes the paper's MobileBERT states
instead (the ``text`` extra and a hub download). Model: the HAR encoder (64-unit
GRU) on audio, an embedding + GRU on text, attention fusion to 128, head
128-64-4; the paper reports accuracy.
"""

from blossom_app.benchmarks.speech import speech_task, with_mobilebert

CLASSES = ("anger", "joy", "neutral", "sadness")

MELD = speech_task(
    name="meld",
    class_names=CLASSES,
    source="BLOSSOM-framework/MELD",
    label_column="emotion",
    group_column="speaker",
    label_map={
        **{name: index for index, name in enumerate(CLASSES)},
        **{index: index for index in range(len(CLASSES))},
    },
)

MELD_MOBILEBERT = with_mobilebert(MELD)
