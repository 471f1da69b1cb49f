"""The dataset seam: what a benchmark declares so that one app can run it."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn


@dataclass(frozen=True)
class ModalitySpec:
    """One input modality of a task.

    ``shape`` is the per-example input shape, e.g. ``(128, 3)`` for 128 time
    steps x 3 channels. ``column`` is the dataset column that holds it.
    """

    name: str
    shape: tuple[int, ...]
    column: str = ""

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)


@dataclass(frozen=True)
class Task:
    """Everything the app needs to know about one benchmark.

    ``encoder`` builds the encoder of one modality: a module mapping
    ``batch x *shape`` to ``batch x embed_dim``. ``source`` is where the data
    comes from by default (a hub id, a local path, or ``embedded``), and
    ``build_embedded`` writes the embedded dataset (``save_to_disk`` format)
    into the given directory. ``group_column``: the natural partition (subject,
    speaker, site). ``overlapping_windows``: rows are windows in time order
    (per group) that may overlap, so the train/test split cuts each group in
    order instead of drawing rows at random (``data/splits.py``). ``metric``:
    the one the paper reports, ``accuracy`` or ``macro-f1``.
    """

    name: str
    modalities: tuple[ModalitySpec, ...]
    class_names: tuple[str, ...]
    encoder: Callable[[ModalitySpec], nn.Module]
    embed_dim: int
    fusion_dim: int
    head_hidden: int
    source: str
    label_column: str = "label"
    group_column: str | None = None
    build_embedded: Callable[[Path], None] | None = None
    overlapping_windows: bool = False
    metric: str = "accuracy"

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(sorted(m.name for m in self.modalities))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def modality(self, name: str) -> ModalitySpec:
        for spec in self.modalities:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def with_columns(self, mapping: dict[str, str]) -> "Task":
        """This task reading other column names: ``mapping`` takes a modality
        name, ``label`` or ``group`` (the natural-partition column) to the
        dataset's column. Raises KeyError naming an unknown key."""
        unknown = set(mapping) - {*self.modality_names, "label", "group"}
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        return replace(
            self,
            modalities=tuple(
                replace(spec, column=mapping.get(spec.name, spec.column))
                for spec in self.modalities
            ),
            label_column=mapping.get("label", self.label_column),
            group_column=mapping.get("group", self.group_column),
        )
