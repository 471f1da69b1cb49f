"""``ucihar``: UCI-HAR, smartphone IMU windows of 6 activities (30 subjects).

Hub dataset ``BLOSSOM-framework/UCI-HAR`` (columns ``acc``, ``gyro``: 128 time
steps x 3 axes at 50 Hz, 2.56 s windows overlapping by 50 %; ``label``: 0-5).
Schema facts and their sources: ``benchmarks/SOURCES.md`` and the dataset
table of docs/datasets.md. The windows overlap, so the train/test split cuts each
subject's windows in order (all rows in order when there is no ``subject``
column). Model: the paper's HAR encoder per modality, attention fusion to 256,
head 256-64-6; the paper reports macro-F1.
"""

from blossom_app.benchmarks.har import har_encoder
from blossom_app.benchmarks.task import ModalitySpec, Task

UCIHAR = Task(
    name="ucihar",
    modalities=(ModalitySpec("acc", (128, 3)), ModalitySpec("gyro", (128, 3))),
    class_names=(
        "WALKING",
        "WALKING_UPSTAIRS",
        "WALKING_DOWNSTAIRS",
        "SITTING",
        "STANDING",
        "LAYING",
    ),
    encoder=har_encoder,
    embed_dim=128,
    fusion_dim=256,
    head_hidden=64,
    source="BLOSSOM-framework/UCI-HAR",
    group_column="subject",
    overlapping_windows=True,
    metric="macro-f1",
)
