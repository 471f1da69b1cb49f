"""The modality mix: how many clients hold each modality set."""

from dataclasses import dataclass

from blossom_app.benchmarks import Task
from blossom_app.errors import ConfigError


@dataclass(frozen=True)
class ModalityMix:
    """How many clients hold each modality set, e.g. 3 acc, 3 gyro, 4 acc+gyro."""

    groups: tuple[tuple[tuple[str, ...], int], ...]
    label: str  # for directory names: "3-3-4", "acc1_gyro1"
    text: str  # as the user wrote it

    @property
    def num_clients(self) -> int:
        return sum(count for _, count in self.groups)

    def modalities_for(self, partition_id: int) -> tuple[str, ...]:
        """Modality set of a partition; sets are dealt round-robin, as in the paper."""
        remaining = [count for _, count in self.groups]
        assigned: list[tuple[str, ...]] = []
        while len(assigned) < self.num_clients:
            for index, (modalities, _) in enumerate(self.groups):
                if remaining[index]:
                    remaining[index] -= 1
                    assigned.append(modalities)
        return assigned[partition_id]


def parse_mix(text: str, task: Task) -> ModalityMix:
    """Parse ``modality-mix``.

    Explicit form, any task: ``"acc=3,gyro=3,acc+gyro=4"``. Short form for a
    two-modality task: ``"3-3-4"`` = first only, second only, both (modalities
    in sorted order).
    """
    names = task.modality_names
    allowed = "'<set>=<count>,...' with sets of " + ", ".join(names) + " joined by '+'"
    if len(names) == 2:
        allowed += f", or 'a-b-c' = {names[0]} only, {names[1]} only, both"
    try:
        if "=" in text:
            groups = []
            for part in text.split(","):
                name, _, count = part.partition("=")
                modalities = tuple(sorted(m.strip() for m in name.split("+")))
                groups.append((modalities, int(count)))
            label = "_".join(f"{'+'.join(m)}{c}" for m, c in groups)
        else:
            counts = [int(c) for c in text.split("-")]
            if len(names) != 2 or len(counts) != 3:
                raise ValueError
            groups = list(zip(((names[0],), (names[1],), names), counts, strict=True))
            label = text
    except ValueError:
        raise ConfigError("modality-mix", text, allowed) from None
    for modalities, count in groups:
        if not set(modalities) <= set(names) or len(set(modalities)) != len(modalities):
            raise ConfigError("modality-mix", text, allowed)
        if count < 0:
            raise ConfigError("modality-mix", text, "non-negative counts")
    if sum(count for _, count in groups) < 1:
        raise ConfigError("modality-mix", text, "at least one client")
    kept = tuple((m, c) for m, c in groups if c > 0)
    return ModalityMix(kept, label, text)
