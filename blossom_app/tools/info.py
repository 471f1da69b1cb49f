"""What ``blossom info`` prints: the app's datasets, policies and choices, or
what a results directory holds and the config it ran with."""

from pathlib import Path

from blossom_app.benchmarks import all_tasks
from blossom_app.common.blocks import NORMALIZATION, held_blocks
from blossom_app.common.config import toml_value
from blossom_app.common.fusion import FUSIONS
from blossom_app.common.policies import ADAPTIVE, ADAPTIVE_SUFFIX, policy_specs
from blossom_app.common.presets import available_presets
from blossom_app.data import PARTITIONERS
from blossom_app.reporting.layout import (
    CHECKPOINT,
    describe,
    find_experiments,
    read_config,
    run_dirs,
)
from blossom_app.server.checkpoint import CheckpointError, read_header


def describe_app() -> str:
    """Datasets (modalities with shapes, classes, source), policies, choices."""
    lines = ["Datasets (run config 'dataset': a name, or '<module>:<attribute>'):"]
    for task in all_tasks():
        lines.append(
            f"  {task.name}: {task.num_classes} classes, source {task.source}, "
            f"metric {task.metric}, natural partition by "
            f"{task.group_column or '(none)'}"
        )
        for spec in task.modalities:
            shape = " x ".join(str(size) for size in spec.shape)
            computed = spec.preprocessing.split(":")[0] if spec.features else ""
            source = f"column '{spec.column}'" + (f" -> {computed}" if computed else "")
            if spec.front_end is not None:  # what a device feeds the exported model
                device = spec.front_end.device_input()
                source += f"; the exported model takes {device.layout}"
            lines.append(f"    {spec.name:<12} {shape} ({source})")
        lines.append(f"    classes: {', '.join(task.class_names)}")
        blocks = ", ".join(sorted(held_blocks(task.modality_names)))
        lines.append(f"    blocks: {blocks}")
        presets = ", ".join(available_presets(task.name)) or "none"
        lines.append(f"    presets (run config 'preset'): {presets}")
        if task.default_preset:
            lines.append(
                f"    default preset: {task.default_preset} (when 'preset' is '')"
            )
    lines.append("Policies (run config 'aggregation'): private blocks")
    specs = policy_specs()
    for spec in (s for s in specs if s.aggregation):
        lines.append(f"  {spec.name:<20} {spec.describe()}")
    lines.append(
        f"  (every policy keeps '{NORMALIZATION}' private; "
        f"personalization='{ADAPTIVE}' lets each client choose per shared block: "
        f"'<policy>{ADAPTIVE_SUFFIX}')"
    )
    for spec in (s for s in specs if not s.aggregation):
        lines.append(f"  {spec.name:<20} {spec.describe()}")
    lines.append(f"Fusions: {', '.join(FUSIONS)}")
    lines.append(f"Partitioners: {', '.join(PARTITIONERS)}")
    return "\n".join(lines)


def _interrupted(experiment: Path) -> str:
    """How far an unfinished experiment's checkpoint got, and how to go on."""
    try:
        state = read_header(experiment / CHECKPOINT)["state"]
    except CheckpointError as error:
        return f"not resumable: {error}"
    return (
        f"checkpoint after run {state['run_index']}, round {state['server_round']}:"
        f" blossom run --resume {experiment}"
    )


def describe_results(path: Path) -> str:
    """Each experiment under ``path``: its cell, state, runs and resolved config."""
    complete, incomplete = find_experiments([path])
    if not complete and not incomplete:
        return f"No experiment (a directory with config.toml) under {path}"
    lines = []
    for experiment in sorted(complete + incomplete):
        state = "complete" if experiment in complete else "incomplete"
        runs = len(run_dirs(experiment))
        lines.append(f"{experiment}\n  {describe(experiment)}: {state}, {runs} run(s)")
        if experiment in incomplete:
            lines.append(f"  {_interrupted(experiment)}")
        for key, value in sorted(read_config(experiment).items()):
            lines.append(f"  {key} = {toml_value(value)}")
    return "\n".join(lines)
