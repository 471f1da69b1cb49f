"""BLOSSOM ClientApp: thin profile, train and evaluate handlers."""

import time

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from . import __version__
from .blocks import format_modalities
from .local_client import LocalClient
from .training import cosine_lr, evaluate, local_seed, train

app = ClientApp()


@app.query("profile")
def profile(msg: Message, context: Context) -> Message:
    """Tell the server this node's modalities, data sizes and device."""
    client = LocalClient.from_context(context)
    content = ConfigRecord(
        {
            "modalities": format_modalities(client.modalities),
            "partition-id": client.node.partition_id,
            "train-examples": len(client.data.train),
            "test-examples": len(client.data.test),
            "device": client.describe_device(),
            "version": __version__,
        }
    )
    return Message(RecordDict({"profile": content}), reply_to=msg)


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the personalized model; reply with its shared blocks only."""
    start = time.perf_counter()
    client = LocalClient.from_context(context)
    config = msg.content["config"]
    run_index, server_round = int(config["run-index"]), int(config["server-round"])
    model = client.personalized_model(context, run_index, msg.content["arrays"])
    exp = client.experiment
    loss = train(
        model,
        client.data.train,
        epochs=exp.local_epochs,
        batch_size=exp.batch_size,
        learning_rate=cosine_lr(exp.learning_rate, server_round, exp.num_server_rounds),
        momentum=exp.momentum,
        weight_decay=exp.weight_decay,
        device=client.device,
        seed=local_seed(
            exp.run_seed(run_index), client.node.partition_id, server_round
        ),
    )
    client.keep_private(context, run_index, model)
    metrics = MetricRecord(
        {
            "num-examples": len(client.data.train),
            "train-loss": loss,
            "train-seconds": time.perf_counter() - start,
        }
    )
    content = RecordDict({"arrays": client.shared_update(model), "metrics": metrics})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the personalized model (shared + private) on the local test split."""
    client = LocalClient.from_context(context)
    run_index = int(msg.content["config"]["run-index"])
    model = client.personalized_model(context, run_index, msg.content["arrays"])
    result = evaluate(
        model,
        client.data.test,
        batch_size=client.experiment.batch_size,
        num_classes=client.experiment.task.num_classes,
        device=client.device,
    )
    metrics = MetricRecord(
        {
            "num-examples": result.num_examples,
            "loss": result.loss,
            "accuracy": result.accuracy,
            "macro-f1": result.macro_f1,
            "confusion": result.confusion.ravel().tolist(),
        }
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
