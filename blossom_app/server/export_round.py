"""The export round, after a run's last round: every node exports its
personalized model on the node and replies with metadata only.

The message carries the final shared parameters the node holds (what
``configure_train`` would send, always in full precision) and where a node that
shares the server's disk (a simulation) should write: ``run_<k>/models/``. A
deployed node writes under its own ``export-dir`` (or ``state-dir``) instead;
the files never come back.
"""

from logging import INFO, WARNING
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid
from flwr.supercore import log

from blossom_app.common.metrics import column
from blossom_app.common.protocol import EXPORT, EXPORT_RECORD, STATUS, WRITTEN
from blossom_app.server.message_flow import stream
from blossom_app.server.strategy import BlockwiseStrategy


def export_models(
    grid: Grid,
    strategy: BlockwiseStrategy,
    arrays: ArrayRecord,
    round_config: ConfigRecord,
    models_dir: Path,
    *,
    server_round: int,
    int8: bool,
    timeout: float,
) -> None:
    """Ask every node of ``strategy`` to export; record each reply in
    ``strategy.record.models`` (and each missing or failed one as a rejection).
    ``round_config``: what every message of the run carries (run index,
    experiment)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    config = ConfigRecord({**round_config, "models-dir": str(models_dir), "int8": int8})
    nodes = strategy.exchange.present(server_round, "export", grid)
    log(INFO, "Exporting the personalized models of %d nodes", len(nodes))
    # the exported models are made once, from the lossless global blocks
    messages = strategy.exchange.send(
        EXPORT, server_round, arrays, config, nodes, transport="fp32"
    )
    replies = stream(grid, messages, timeout)
    record = strategy.record
    for answer in strategy.exchange.receive(EXPORT, server_round, replies, None, ()):
        content = answer.reply.content
        if EXPORT_RECORD not in content.config_records or content.array_records:
            reason = "export reply must carry a report and no arrays"
            record.reject(server_round, "export", answer.node_id, reason)
            continue
        values = dict(content.config_records[EXPORT_RECORD])
        row = {column(key): value for key, value in values.items()}
        record.models.append(record.client_row(server_round, answer.node_id, **row))
        if values.get(STATUS) != WRITTEN:
            log(WARNING, "Node %d exported nothing: %s", answer.node_id, values)
    if not any(models_dir.iterdir()):  # deployed nodes wrote on their own disks
        models_dir.rmdir()
