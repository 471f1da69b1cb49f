"""BLOSSOM ClientApp: thin profile, train, evaluate and export handlers."""

import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from blossom_app.client.local_client import LocalClient
from blossom_app.client.personalization import federation_update, own_offsets
from blossom_app.common import metrics as m
from blossom_app.common.profile import problem_reply
from blossom_app.common.protocol import (
    EVALUATE_FIRST,
    EVALUATION,
    EXPORT_RECORD,
    PERSONALIZATION,
)
from blossom_app.errors import ConfigError, DataError

app = ClientApp()


@app.query("profile")
def profile(msg: Message, context: Context) -> Message:
    """Tell the server this node's modalities, data sizes and device, or the
    problem (the user's to fix) that keeps it from setting up: the server says
    it once for all nodes."""
    try:
        client = LocalClient.from_context(context)
    except (ConfigError, DataError) as error:
        return Message(problem_reply(error), reply_to=msg)
    return Message(client.profile().to_record(), reply_to=msg)


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the personalized model; reply with its shared blocks only (a
    block it kept as its own as the federation's plus its change). Asked
    to (``EVALUATE_FIRST``), evaluate it first, as received: the evaluation of
    the previous round's aggregate."""
    start = time.perf_counter()
    client = LocalClient.from_context(context)
    config = msg.content["config"]
    run_index, server_round = int(config["run-index"]), int(config["server-round"])
    received = msg.content["arrays"]
    store = client.private_store(config)
    before = store.load(up_to=server_round - 1)
    model = client.personalized_model(run_index, received, before)
    content = RecordDict()
    if config.get(EVALUATE_FIRST, False):
        content[EVALUATION], content[PERSONALIZATION] = client.evaluation_records(model)
    offsets = own_offsets(model, received)
    loss = client.train(model, run_index, server_round, received)
    client.keep_private(store, server_round, model, before)
    content["arrays"] = client.shared_update(
        federation_update(model.state_dict(), offsets)
    )
    content["metrics"] = MetricRecord(
        {
            m.TRAIN_EXAMPLES: len(client.data.train),
            m.TRAIN_LOSS: loss,
            m.TRAIN_SECONDS: time.perf_counter() - start,
        }
    )
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the personalized model (shared + private) on the local test split."""
    client = LocalClient.from_context(context)
    config = msg.content["config"]
    private = client.private_store(config).load(up_to=int(config["server-round"]))
    metrics, own = client.evaluation_records(
        client.personalized_model(
            int(config["run-index"]), msg.content["arrays"], private
        )
    )
    content = RecordDict({"metrics": metrics, PERSONALIZATION: own})
    return Message(content, reply_to=msg)


@app.query("export")
def export_handler(msg: Message, context: Context) -> Message:
    """Export the personalized model on this node; reply with metadata only
    (the files hold private blocks and stay here)."""
    # torch.onnx, onnx, onnxruntime
    from blossom_app.client.node_export import export_on_node

    client = LocalClient.from_context(context)
    config = msg.content["config"]
    server_round = int(config["server-round"])
    report = export_on_node(
        client,
        run_index=int(config["run-index"]),
        server_round=server_round,
        shared=msg.content["arrays"],
        private=client.private_store(config).load(up_to=server_round),
        models_dir=Path(str(config["models-dir"])),
        quantize=bool(config["int8"]),
    )
    return Message(RecordDict({EXPORT_RECORD: ConfigRecord(report)}), reply_to=msg)
