"""The export round in-process: the real strategy's export messages answered by
the real ClientApp; models are written on the node, replies carry no arrays."""

import json

import numpy as np
import onnxruntime as ort
import torch
from flwr.app import Array, ArrayRecord, RecordDict
from rounds import (
    NODES,
    RUN_CONFIG,
    LocalGrid,
    contexts,
    global_arrays,
    reply,
    round_config,
    strategy,
    train_round,
)

from blossom_app.client.local_client import LocalClient
from blossom_app.common.protocol import EXPORT_RECORD
from blossom_app.server.export_round import export_models
from blossom_app.tools.cli import main

ACC, GYRO, BOTH = NODES


def trained(policy: str):
    server, nodes = strategy(policy), contexts({**RUN_CONFIG, "aggregation": policy})
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    return server, nodes, arrays


def test_every_node_exports_its_personalized_model_and_sends_no_arrays(tmp_path):
    policy = "private-head"
    server, nodes, arrays = trained(policy)
    models = tmp_path / "run_0" / "models"
    export_models(
        LocalGrid(nodes), server, arrays, round_config(), models,
        server_round=1, int8=False, timeout=60,
    )  # fmt: skip

    rows = {row["node_id"]: row for row in server.record.models}
    assert set(rows) == set(NODES) and not server.record.rejections
    sent = [r for r in server.record.communication if r["phase"] == "export"]
    assert sent and {r["direction"] for r in sent} == {"down"}
    for node_id, modalities in NODES.items():
        row = rows[node_id]
        folder = models / f"partition-{row['partition_id']}-{'+'.join(modalities)}"
        assert row["status"] == "written" and row["path"] == str(folder)
        assert sorted(p.name for p in folder.iterdir()) == [
            "model.json", "model.onnx", "model.pt"
        ]  # fmt: skip
        assert row["parity_max_abs_error"] <= 1e-4
        # the card and the file agree, and the file is what the node evaluates
        card = json.loads((folder / "model.json").read_text())
        session = ort.InferenceSession(str(folder / "model.onnx"))
        assert [i.name for i in session.get_inputs()] == list(modalities)
        assert [i["name"] for i in card["inputs"]] == list(modalities)
        assert card["policy"] == policy and card["server_round"] == 1
        client = LocalClient.from_context(nodes[node_id])
        model = client.personalized_model(
            0,
            server.exchange.shared_for(node_id, arrays),
            client.private_store(round_config()).load(up_to=1),
        )
        assert card["test_accuracy"] == client.evaluate(model).accuracy
        test = client.data.test.inputs
        logits = session.run(None, {m: test[m][:16] for m in modalities})[0]
        predicted = logits.argmax(axis=1)
        with torch.no_grad():
            expected = model.eval()(
                {m: torch.from_numpy(test[m][:16]) for m in modalities}
            )
        np.testing.assert_array_equal(predicted, expected.argmax(dim=1).numpy())


def test_a_device_without_export_dir_or_state_dir_says_why_and_the_run_goes_on(
    tmp_path,
):
    server, nodes, arrays = trained("private-head")
    elsewhere = tmp_path / "server-disk" / "models"  # the server's, not the node's
    grid = LocalGrid(nodes)
    messages = server.exchange.send(
        "query.export", 1, arrays,
        round_config(**{"models-dir": str(elsewhere), "int8": False}),
        sorted(NODES),
    )  # fmt: skip
    answers = grid.send_and_receive(messages)
    for answer in answers:
        status = answer.content.config_records[EXPORT_RECORD]["status"]
        assert status.startswith("not written") and "export-dir" in status
    assert not elsewhere.exists()


def test_export_dir_in_node_config_wins(tmp_path):
    server, nodes, arrays = trained("private-head")
    nodes[GYRO].node_config["export-dir"] = str(tmp_path / "device")
    export_models(
        LocalGrid(nodes), server, arrays, round_config(), tmp_path / "models",
        server_round=1, int8=False, timeout=60,
    )  # fmt: skip
    assert (tmp_path / "device" / "partition-1-gyro" / "model.onnx").is_file()
    assert not (tmp_path / "models" / "partition-1-gyro").exists()


def test_an_export_reply_carrying_arrays_is_rejected(tmp_path):
    server, nodes, arrays = trained("private-head")

    class LeakyGrid(LocalGrid):
        leaked = False

        def answer(self, message):
            answer = super().answer(message)
            if self.leaked:
                return answer
            self.leaked = True
            leaked = RecordDict(
                {
                    EXPORT_RECORD: answer.content.config_records[EXPORT_RECORD],
                    "arrays": ArrayRecord({"head.0.bias": Array(np.zeros(64, "f4"))}),
                }
            )
            return reply(message, leaked)

    export_models(
        LeakyGrid(nodes), server, arrays, round_config(), tmp_path / "models",
        server_round=1, int8=False, timeout=60,
    )  # fmt: skip
    [rejection] = server.record.rejections
    assert rejection["phase"] == "export" and "no arrays" in rejection["reason"]
    assert len(server.record.models) == 2


def test_blossom_export_re_exports_a_saved_model_to_an_equal_one(tmp_path, capsys):
    server, nodes, arrays = trained("private-head")
    export_models(
        LocalGrid(nodes), server, arrays, round_config(), tmp_path / "models",
        server_round=1, int8=False, timeout=60,
    )  # fmt: skip
    folder = tmp_path / "models" / "partition-2-acc+gyro"
    again = tmp_path / "again"
    assert (
        main(["export", str(folder / "model.pt"), "--out", str(again), "--quantize"])
        == 0
    )
    assert "int8-size-bytes" in capsys.readouterr().out
    windows = {
        m: np.random.default_rng(1).standard_normal((4, 128, 3), "f4")
        for m in ("acc", "gyro")
    }
    first, second = (
        ort.InferenceSession(str(path / "model.onnx")).run(None, windows)[0]
        for path in (folder, again)
    )
    np.testing.assert_allclose(second, first, atol=1e-6)
    assert (again / "model.int8.onnx").stat().st_size < (
        again / "model.onnx"
    ).stat().st_size
    assert main(["export", str(tmp_path / "missing.pt")]) == 2
