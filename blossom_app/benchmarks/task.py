"""The dataset seam: what a benchmark declares so that one app can run it."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from blossom_app.benchmarks.front_end import FrontEnd


@dataclass(frozen=True)
class ModalitySpec:
    """One input modality of a task.

    ``shape`` is the per-example input shape the model takes: ``time x
    channels`` for windows (e.g. ``(128, 3)``), ``channels x height x width``
    for images and spectrograms, ``(length,)`` for token ids. ``column`` is the
    dataset column that holds it. ``features`` turns one stored value (an
    audio file, a text, an image) into that array; without it the column holds
    the arrays themselves. ``preprocessing`` says, for the model card, what a
    device computes before feeding the model (``features``' description).
    ``normalize``: the model standardizes this input per channel (the channel
    axis: first for images, last otherwise); not for token ids.
    ``embed_dim``: its encoder's output size, where it differs from the task's.
    ``front_end``: the feature computation an exported model includes, so that
    a device feeds stored values (``front_end.py``); by default ``features``
    when that is a front end able to (``LogMel`` with a ``sample_rate``,
    ``ImagePixels``). Give it where ``features`` is a plain function over one.
    """

    name: str
    shape: tuple[int, ...]
    column: str = ""
    features: Callable[[Any], np.ndarray] | None = None
    preprocessing: str = ""
    normalize: bool = True
    embed_dim: int | None = None
    front_end: FrontEnd | None = None

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)
        if self.front_end is None and isinstance(self.features, FrontEnd):
            if self.features.device_input() is not None:
                object.__setattr__(self, "front_end", self.features)
        elif self.front_end is not None and self.front_end.device_input() is None:
            raise ValueError(
                f"Modality '{self.name}': its front_end cannot be part of an "
                "exported model as declared (a LogMel front end needs "
                "sample_rate, the rate a device records at)."
            )

    @property
    def channel_axis(self) -> int:
        """The axis of an example that holds its channels."""
        return 0 if len(self.shape) == 3 else len(self.shape) - 1


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
    the one the paper reports, ``accuracy`` or ``macro-f1``. ``label_map``:
    where the label column holds names or other ids, each value (a name,
    lower-cased, or an id) -> its class index; rows whose label it lacks are
    left out. ``head_hidden``: the head's hidden layer sizes. ``presets``: a
    plug-in's directory of preset files (``<name>.toml``, see ``presets.py``).
    ``default_preset``: the preset a run of this task takes when its run
    config names none (the user's keys still win over it).
    """

    name: str
    modalities: tuple[ModalitySpec, ...]
    class_names: tuple[str, ...]
    encoder: Callable[[ModalitySpec], nn.Module]
    embed_dim: int
    fusion_dim: int
    head_hidden: int | tuple[int, ...]
    source: str
    label_column: str = "label"
    group_column: str | None = None
    build_embedded: Callable[[Path], None] | None = None
    overlapping_windows: bool = False
    metric: str = "accuracy"
    label_map: Mapping[str | int, int] | None = field(default=None, hash=False)
    presets: Path | None = None
    default_preset: str = ""

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(sorted(m.name for m in self.modalities))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def embedding_size(self, name: str) -> int:
        """The output size of modality ``name``'s encoder."""
        return self.modality(name).embed_dim or self.embed_dim

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


@dataclass(frozen=True)
class EncoderByModality:
    """A task's ``encoder`` where modalities need different networks: modality
    name -> the function that builds its encoder from its spec."""

    builders: tuple[tuple[str, Callable[[ModalitySpec], nn.Module]], ...]

    def __call__(self, spec: ModalitySpec) -> nn.Module:
        return dict(self.builders)[spec.name](spec)
