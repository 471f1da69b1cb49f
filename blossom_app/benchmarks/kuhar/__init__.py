"""``kuhar``: KU-HAR, smartphone IMU windows of 8 activities (90 subjects).

Hub dataset ``BLOSSOM-framework/KU-HAR`` (columns ``acc``, ``gyro``: 64 time
steps x 3 axes, FedMultimodal's windowing; ``label``: 0-7 in FedMultimodal's
8-class order). Whether the hub's windows overlap is not known, so the
train/test split cuts each subject's windows in order, which is leakage-free
either way. Sources: ``benchmarks/SOURCES.md``. Model: as UCI-HAR's, head
256-64-8; the paper reports macro-F1.
"""

from blossom_app.benchmarks.har import har_encoder
from blossom_app.benchmarks.task import ModalitySpec, Task

KUHAR = Task(
    name="kuhar",
    modalities=(ModalitySpec("acc", (64, 3)), ModalitySpec("gyro", (64, 3))),
    class_names=(
        "Stand",
        "Sit",
        "Walk",
        "Lay",
        "Jump",
        "Run",
        "Stair-up",
        "Stair-down",
    ),
    encoder=har_encoder,
    embed_dim=128,
    fusion_dim=256,
    head_hidden=64,
    source="BLOSSOM-framework/KU-HAR",
    group_column="subject",
    overlapping_windows=True,
    metric="macro-f1",
)
