"""Which finished experiments ran alike: a *variant* is a run config that
differs from the others' in anything but the cell (mix, policy), the seed, the
number of runs and where results went (DECISIONS 2), labelled by the keys that
differ."""

from collections.abc import Mapping, Sequence
from pathlib import Path

from blossom_app.common.presets import PRESET, Scalar, app_defaults, resolve_preset
from blossom_app.errors import ConfigError
from blossom_app.reporting.layout import read_config

#: Run-config keys that never separate rows: the cell's own (its directory
#: and policy), the seed and number of runs (a row's runs differ in them by
#: design; the ``runs`` column counts them) and where results went.
NOT_A_VARIANT = frozenset(
    {
        "dataset",
        "partitioner",
        "modality-mix",
        "aggregation",
        "private-blocks",
        "personalization",
        "seed",
        "num-runs",
        "results-dir",
    }
)


def variants(
    experiments: Sequence[Path], defaults: Mapping[str, Scalar] | None = None
) -> dict[Path, str]:
    """Each experiment's variant label: ``key=value`` for the keys of its run
    config that differ between ``experiments`` (a key an older config lacks
    counts as the app's ``defaults``), naming its preset and, of the other
    keys, those whose value is not what its preset makes of the defaults;
    ``""`` where all ran alike."""
    if defaults is None:
        try:
            defaults = app_defaults()
        except FileNotFoundError:  # an installed app without its pyproject.toml
            defaults = {}
    configs = {path: {**defaults, **read_config(path)} for path in experiments}
    keys = set().union(*configs.values()) - NOT_A_VARIANT
    varying = sorted(  # the preset first
        (key for key in keys if len({repr(c.get(key)) for c in configs.values()}) > 1),
        key=lambda key: (key != PRESET, key),
    )
    labelled = {}
    for path, config in configs.items():
        try:
            preset = resolve_preset(
                {
                    **defaults,
                    PRESET: config.get(PRESET, ""),
                    "dataset": config.get("dataset", ""),
                },
                defaults,
            )
        except (ConfigError, KeyError, OSError):  # a preset this app lacks
            preset = dict(defaults)
        labelled[path] = " ".join(
            f"{key}={_shown(config.get(key))}"
            for key in varying
            if (key == PRESET and config.get(key))
            or (key != PRESET and config.get(key) != preset.get(key))
        )
    return labelled


def _shown(value: object) -> str:
    """A run-config value as a user writes it (``true``, not ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
