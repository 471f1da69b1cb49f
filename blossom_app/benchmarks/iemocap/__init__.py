"""``iemocap``: IEMOCAP, acted dyadic sessions: audio and transcript, 4
emotions (sadness, neutral, anger, happiness: happy and excited merged; the
other labels are left out).

Hub dataset ``BLOSSOM-framework/IEMOCAP``: ``audio`` (a Hugging Face Audio
column), ``text`` (the transcript; map ``transcription_text`` with
data-columns where that is its name), ``label`` (11 ids: 1 sad, 6 neu, 7 ang,
8 hap, 10 exc are kept; or those names). No speaker or session column is
known, so there is no natural partition. Sources: ``benchmarks/SOURCES.md``.
Features and model as ``meld`` (``speech.py``); ``iemocap-mobilebert`` takes
MobileBERT states. The paper reports accuracy.
"""

from blossom_app.benchmarks.speech import speech_task, with_mobilebert

IEMOCAP = speech_task(
    name="iemocap",
    class_names=("sadness", "neutral", "anger", "happiness"),
    source="BLOSSOM-framework/IEMOCAP",
    label_map={
        "sad": 0,
        "neu": 1,
        "ang": 2,
        "hap": 3,
        "exc": 3,
        1: 0,
        6: 1,
        7: 2,
        8: 3,
        10: 3,
    },
)

IEMOCAP_MOBILEBERT = with_mobilebert(IEMOCAP)
