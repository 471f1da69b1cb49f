"""A round's evaluations as they come in (from evaluate replies, or riding on
the next round's train replies), screened, recorded, and summarized once the
round is complete."""

from flwr.app import ConfigRecord, MessageType
from flwr.app import MetricRecord as Metrics

from blossom_app.common import metrics as m
from blossom_app.common.protocol import OWN_BLOCKS
from blossom_app.reporting.run_record import RunRecord
from blossom_app.server.replies import problem

#: Per-client values of an evaluation (besides its examples and confusion).
EVALUATED = (m.TEST_LOSS, m.ACCURACY, m.MACRO_F1)


class RoundEvaluations:
    """Evaluations per round, appended to ``record`` (rows, rejections and the
    summary in ``record.aggregated``)."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        #: round -> (partition, client values, confusion) per usable evaluation
        #: of a round not yet summarized (part of ``ServerState``)
        self.pending: dict[int, list[tuple[int, dict, object]]] = {}

    def collect(
        self,
        server_round: int,
        node_id: int,
        metrics: Metrics | None,
        personalization: ConfigRecord | None = None,
    ) -> None:
        """Keep one node's evaluation of ``server_round``'s model, or record why
        it is unusable; ``personalization`` names the blocks the evaluated
        model took from the client's own training (``own_blocks`` column)."""
        evaluations = self.pending.setdefault(server_round, [])
        reason = problem(
            metrics or Metrics(), m.TEST_EXAMPLES, (*EVALUATED, m.CONFUSION)
        )
        if reason is None:
            like = evaluations[0][2] if evaluations else None
            try:
                confusion = m.confusion_matrix(metrics[m.CONFUSION], like)
            except ValueError as error:
                reason = str(error)
        if reason is not None:
            self.record.reject(server_round, MessageType.EVALUATE, node_id, reason)
            return
        values = {m.TEST_EXAMPLES: metrics[m.TEST_EXAMPLES]}
        values |= {key: float(metrics[key]) for key in EVALUATED}
        partition = self.record.profiles[node_id].partition_id
        evaluations.append((partition, values, confusion))
        columns = {m.column(key): value for key, value in values.items()}
        own = (personalization or ConfigRecord()).get(OWN_BLOCKS)
        if isinstance(own, str):
            columns[m.column(OWN_BLOCKS)] = own
        self.record.evaluate.append(
            self.record.client_row(server_round, node_id, **columns)
        )

    def summarize(self, server_round: int) -> Metrics | None:
        """The round's evaluation over its clients, in partition order (so sums
        repeat exactly), recorded in ``record.aggregated``; None if nobody's."""
        evaluations = sorted(self.pending.pop(server_round, []), key=lambda e: e[0])
        if not evaluations:
            return None
        _, clients, confusions = zip(*evaluations, strict=True)
        summary = m.summarize_evaluation(list(clients), list(confusions))
        self.record.aggregated[server_round].update(summary)
        return Metrics(summary)
