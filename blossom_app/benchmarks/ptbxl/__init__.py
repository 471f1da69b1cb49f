"""``ptbxl``: PTB-XL, 10 s 12-lead ECGs at 100 Hz, 5 diagnostic superclasses.

Hub dataset ``BLOSSOM-framework/PTB-XL``: ``i_to_avf`` (the limb leads I, II,
III, aVR, aVL, aVF) and ``v1_to_v6`` (the chest leads), each 1000 samples x 6
leads, float32; ``label``: NORM, MI, STTC, CD, HYP (0-4); ``site_id``: the
recording site, the natural partition. One record per row, no windows.
Sources: ``benchmarks/SOURCES.md``. Model: the HAR encoder with a 64-unit GRU
per lead group, attention fusion to 128, head 128-64-5; the paper reports
macro-F1.
"""

from functools import partial

from blossom_app.benchmarks.har import har_encoder
from blossom_app.benchmarks.task import ModalitySpec, Task

PTBXL = Task(
    name="ptbxl",
    modalities=(
        ModalitySpec("limb", (1000, 6), column="i_to_avf"),
        ModalitySpec("chest", (1000, 6), column="v1_to_v6"),
    ),
    class_names=("NORM", "MI", "STTC", "CD", "HYP"),
    encoder=partial(har_encoder, hidden=64),
    embed_dim=64,
    fusion_dim=128,
    head_hidden=64,
    source="BLOSSOM-framework/PTB-XL",
    group_column="site_id",
    metric="macro-f1",
)
