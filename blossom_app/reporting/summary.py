"""The short table an experiment ends with, read back from its averaged CSVs:
the personalized models' final-round accuracy and macro-F1 per modality set,
and where each run's exported models are."""

from pathlib import Path

from blossom_app.common.policies import CENTRALIZED
from blossom_app.common.protocol import STATUS, WRITTEN
from blossom_app.reporting.csv_files import read_rows
from blossom_app.reporting.layout import (
    AGGREGATED,
    MODALITIES,
    MODELS,
    describe,
    labels,
    run_dirs,
)


def _cell(row: dict[str, str], column: str) -> str:
    mean, std = row.get(f"{column}_mean", ""), row.get(f"{column}_std", "")
    if mean == "":
        return "-"
    return f"{float(mean):.3f}" + (f" ± {float(std):.3f}" if std else "")


def final_table(experiment: Path) -> str:
    """Final evaluated round, mean (± std over runs): per modality set
    (example-weighted over its clients), then all clients weighted and pooled."""
    aggregated = [r for r in read_rows(experiment / AGGREGATED) if r["round"]]
    evaluated = [r for r in aggregated if r.get("weighted_accuracy_mean", "")]
    if not evaluated:
        return f"{describe(experiment)}: no evaluation round"
    final = evaluated[-1]
    last = final["round"]
    header = f"{'modalities':<16} {'clients':>7}  {'accuracy':<15}  {'macro-F1':<15}"
    # the centralized baseline's models are shared by every client of a set
    centralized = labels(experiment)["aggregation"] == CENTRALIZED
    kind = "Models" if centralized else "Personalized models"
    lines = [
        f"{kind} after round {last} ({describe(experiment)}, {final['runs']} run(s)):",
        header,
    ]
    for row in read_rows(experiment / MODALITIES):
        if row["round"] == last:
            clients = f"{float(row['clients_mean']):.0f}"
            lines.append(
                f"{row['modalities']:<16} {clients:>7}  "
                f"{_cell(row, 'accuracy'):<15}  {_cell(row, 'macro_f1'):<15}"
            )
    clients = f"{float(final['test_clients_mean']):.0f}"
    for label, kind in (("all (weighted)", "weighted"), ("all (pooled)", "pooled")):
        lines.append(
            f"{label:<16} {clients:>7}  {_cell(final, f'{kind}_accuracy'):<15}  "
            f"{_cell(final, f'{kind}_macro_f1'):<15}"
        )
    return "\n".join(lines)


def models_lines(experiment: Path) -> list[str]:
    """Per run with a ``models.csv``: how many nodes wrote their model, where."""
    lines = []
    for run in run_dirs(experiment):
        if not (run / MODELS).is_file():
            continue
        rows = read_rows(run / MODELS)
        written = [row for row in rows if row[STATUS] == WRITTEN]
        places = sorted({str(Path(row["path"]).parent) for row in written})
        lines.append(
            f"{run.name}: {len(written)} of {len(rows)} personalized models exported "
            f"(ONNX + model card), in {', '.join(places) or 'no directory'}"
        )
        lines += [
            f"  node {row['node_id']} (partition {row['partition_id']}): "
            f"{row['status']}"
            for row in rows
            if row not in written
        ]
    return lines
