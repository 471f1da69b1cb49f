"""A node's side of the export round: where its personalized model goes, and
the report (metadata only, never arrays) it replies with."""

from pathlib import Path

from flwr.app import ArrayRecord

from blossom_app.client.client_state import PrivateState
from blossom_app.client.local_client import LocalClient
from blossom_app.common.config import Scalar
from blossom_app.common.protocol import STATUS, WRITTEN
from blossom_app.onnx.export import ExportError, export_personalized
from blossom_app.onnx.model_card import build_card


def export_dir(client: LocalClient, models_dir: Path) -> Path | None:
    """Where ``client``'s personalized model goes: its node's ``export-dir``,
    else ``<state-dir>/models``, else ``models_dir`` (named by the server) when
    this node shares the server's disk (simulation); one sub-folder per
    partition and modality set. None: nowhere."""
    node = client.setup.node
    if node.export_dir is not None:
        return node.export_dir / client.folder_name
    if node.state_dir is not None:
        return node.state_dir / "models" / client.folder_name
    if models_dir.is_dir():
        return models_dir / client.folder_name
    return None


def export_on_node(
    client: LocalClient,
    run_index: int,
    server_round: int,
    shared: ArrayRecord,
    private: PrivateState | None,
    models_dir: Path,
    quantize: bool,
) -> dict[str, Scalar]:
    """Export ``client``'s personalized model (``shared`` blocks and its
    ``private`` state) here; the report it replies with."""
    target = export_dir(client, models_dir)
    if target is None:
        return {
            STATUS: "not written: this node has neither export-dir nor "
            "state-dir in its --node-config; set export-dir"
        }
    model = client.personalized_model(run_index, shared, private)
    final = client.evaluate(model)
    exp = client.experiment
    card = build_card(
        exp.task,
        client.setup.modalities,
        fusion=exp.fusion,
        policy=exp.policy.name,
        run_index=run_index,
        server_round=server_round,
        test_accuracy=final.accuracy,
        test_macro_f1=final.macro_f1,
        normalization=model.normalization(),
    )
    try:
        report = export_personalized(
            model, card, target, client.data.test, exp.task, quantize=quantize
        )
    except ExportError as error:
        return {STATUS: f"not written: {error}"}
    return {
        STATUS: WRITTEN,
        "path": str(target),
        "test-accuracy": final.accuracy,
        "test-macro-f1": final.macro_f1,
        **report.to_record(),
    }
