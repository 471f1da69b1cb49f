"""The short table a run ends with: personalized-model metrics per modality set."""

from collections import defaultdict
from collections.abc import Iterable, Mapping


def final_by_modality_set(
    client_rows: Iterable[Mapping[str, object]],
) -> list[dict[str, object]]:
    """Per modality set, mean accuracy and macro-F1 of its clients in the last
    evaluated round (plain mean over clients), plus ``all`` (example-weighted)."""
    rows = list(client_rows)
    if not rows:
        return []
    last = max(int(row["round"]) for row in rows)
    final = [row for row in rows if int(row["round"]) == last]
    groups: dict[str, list[Mapping[str, object]]] = defaultdict(list)
    for row in final:
        groups[str(row["modalities"])].append(row)
    table = []
    for label, members in sorted(groups.items()):
        table.append(
            {
                "modalities": label,
                "clients": len(members),
                "accuracy": sum(float(r["accuracy"]) for r in members) / len(members),
                "macro_f1": sum(float(r["macro_f1"]) for r in members) / len(members),
            }
        )
    total = sum(int(r["num_examples"]) for r in final)
    table.append(
        {
            "modalities": "all (weighted)",
            "clients": len(final),
            "accuracy": sum(
                float(r["accuracy"]) * int(r["num_examples"]) for r in final
            )
            / total,
            "macro_f1": sum(
                float(r["macro_f1"]) * int(r["num_examples"]) for r in final
            )
            / total,
        }
    )
    return table


def format_table(table: list[dict[str, object]], title: str) -> str:
    """Render the summary as fixed-width text."""
    lines = [
        title,
        f"{'modalities':<16} {'clients':>7} {'accuracy':>9} {'macro-F1':>9}",
    ]
    for row in table:
        lines.append(
            f"{row['modalities']:<16} {row['clients']:>7} "
            f"{float(row['accuracy']):>9.3f} {float(row['macro_f1']):>9.3f}"
        )
    return "\n".join(lines)
