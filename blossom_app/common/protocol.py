"""Names both apps must agree on beyond Flower's own: the query message types
and the records of their replies (the message table: docs/architecture.md).

``train`` and ``evaluate`` use Flower's message types; their records are
``arrays``, ``config`` and ``metrics`` (metric keys in ``metrics.py``).
"""

from flwr.app import MessageType

#: Ask a node what it holds: modalities, example counts, device, version.
PROFILE = f"{MessageType.QUERY}.profile"
PROFILE_RECORD = "profile"
#: The profile reply's record instead, when the node cannot set up for this
#: run config (a ConfigError or DataError: the user's to fix): ``message``.
#: The server says it once for all nodes instead of each node a traceback.
SETUP_PROBLEM = "setup-problem"

#: After a run's last round: export the personalized model on the node.
EXPORT = f"{MessageType.QUERY}.export"
#: The export reply's one ConfigRecord: status, where, file name, sha256,
#: sizes, parity error, latencies, the model's test accuracy. Never arrays.
EXPORT_RECORD = "export"
#: Every export report says what happened: ``written``, or why nothing was.
STATUS = "status"
WRITTEN = "written"

#: Train config flag: before training, evaluate the personalized model built
#: from the blocks just received. Those blocks are the previous round's
#: aggregate, so this is the previous round's evaluation, without sending the
#: same blocks a second time in an ``evaluate`` message.
EVALUATE_FIRST = "evaluate-first"
#: The train reply's MetricRecord holding that evaluation (evaluate-reply keys).
EVALUATION = "evaluation"
#: Beside every evaluation (an evaluate reply, or a train reply's
#: ``EVALUATION``): a ConfigRecord naming the blocks the evaluated model took
#: from the client's own training (``OWN_BLOCKS``, e.g. ``fusion+head``).
PERSONALIZATION = "personalization"
OWN_BLOCKS = "own-blocks"

#: Every train, evaluate and export config names the experiment (a name unique
#: to its results directory) beside ``run-index``: a node files its private
#: state under both, so the state outlives a Flower run id and a resumed run
#: (a new Flower run) finds it (``client/client_state.py``).
EXPERIMENT = "experiment"
#: The last round the server's checkpoint holds: a node keeps its private state
#: of that round (where a resumed run starts from) and of every later round.
CHECKPOINT_ROUND = "checkpoint-round"
#: Where a node that shares the server's disk (a simulation) and has no
#: ``state-dir`` keeps its private state: under the results directory.
NODE_STATE_DIR = "node-state-dir"
