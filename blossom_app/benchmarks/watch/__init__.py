"""``watch``: real smartwatch IMU recordings of 7 shoulder exercises.

10 subjects, accelerometer + gyroscope at 50 Hz, shipped inside seglearn 1.2.5
(BSD-3; Burns et al. 2018, arXiv:1802.01489). Windows of 128 samples, step 64.
"""

from blossom_app.benchmarks.har import har_encoder
from blossom_app.benchmarks.task import ModalitySpec, Task
from blossom_app.benchmarks.watch.embedded import (
    CLASS_NAMES,
    WINDOW,
    build_watch_dataset,
)

WATCH = Task(
    name="watch",
    modalities=(
        ModalitySpec("acc", (WINDOW, 3)),
        ModalitySpec("gyro", (WINDOW, 3)),
    ),
    class_names=CLASS_NAMES,
    encoder=har_encoder,
    embed_dim=128,
    fusion_dim=256,
    head_hidden=64,
    source="embedded",
    group_column="subject",
    build_embedded=build_watch_dataset,
)
