"""A secured federation on loopback, built only from what edge/ ships: the
credentials from edge/certs/make-certs.sh, the SuperLink and SuperNodes started
with the exact ExecStart and Environment of the systemd units in edge/systemd
(paths pointed at this test's files), keys registered with the commands
make-certs.sh prints and with register-supernodes.sh, then a real `flwr run`
over TLS. A SuperNode whose key nobody registered is refused; one restarted
mid-run comes back with the same node id and continues its personalization."""

import time
from pathlib import Path

import pytest
from federation import (
    SECURED_NODES,
    BackgroundRun,
    SecuredFederation,
    trained_rounds,
    wait_for,
)

from blossom_app.reporting.csv_files import read_rows

APP = Path(__file__).parents[1]


@pytest.fixture
def secured_federation(flwr_env, tmp_path):
    """A TLS + authenticated SuperLink with SuperNodes ``node-acc`` (partition
    0) and ``node-gyro`` (partition 1) connected, and the ``stranger`` (an
    unregistered key) started (``federation.SecuredFederation``). Yields the
    environment, the SuperLink's state directory, the stranger's process and
    ``restart(name)``, which stops a SuperNode and starts it again as its unit
    would."""
    with SecuredFederation(flwr_env, tmp_path) as federation:
        yield (
            federation.env,
            federation.server,
            federation.stranger,
            federation.restart_node,
        )


def test_secured_federation_runs_and_refuses_an_unregistered_key(
    secured_federation, tmp_path
):
    env, server, stranger, restart = secured_federation
    logs = tmp_path / "logs"

    # The unregistered SuperNode is refused and ends (systemd would retry it).
    assert stranger.wait(timeout=60) != 0
    assert "Failed to activate SuperNode" in (logs / "stranger.log").read_text()
    superlink_log = (logs / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in superlink_log

    run = BackgroundRun(
        APP,
        {
            "num-server-rounds": 3,
            "local-epochs": 1,
            "evaluate-every": 3,
            "modality-mix": "acc=1,gyro=1",
            "batch-size": 64,
            "round-timeout": 60.0,
            "export-onnx": False,  # exporting is tested elsewhere
        },
        connection="blossom",
        env=env,
        timeout=600,
    )
    # node-acc restarts after round 1 (systemd's Restart=on-failure would)
    acc_state = tmp_path / "state" / "node-acc"
    wait_for(lambda: trained_rounds(acc_state) >= 1, "node-acc's round 1")
    time.sleep(2)  # its reply is on its way
    restart("node-acc")
    before = trained_rounds(acc_state)
    outcome = run.outcome()
    all_logs = "\n".join(p.read_text()[-2000:] for p in sorted(logs.iterdir()))
    assert outcome.ok, outcome.output[-3000:] + all_logs

    # Results where the unit's BLOSSOM_RESULTS_DIR says (/var/lib/blossom/results).
    [result] = (server / "results").glob("watch/iid/acc1_gyro1/*/*")
    clients = read_rows(result / "run_0" / "client_metrics.csv")
    assert {row["modalities"] for row in clients} == {"acc", "gyro"}
    assert (result / "aggregated_metrics.csv").is_file()
    # Each SuperNode read its node config from the TOML file the unit names.
    for name in SECURED_NODES:
        assert list((tmp_path / "state" / name).rglob("*.npz")), name
    # The restarted node-acc kept its node id (its key's) and trained on from
    # its saved private blocks: the count went on from where it stopped.
    acc = [r for r in clients if r["partition_id"] == "0" and r["train_loss"]]
    assert len({r["node_id"] for r in acc}) == 1
    after = [r for r in acc if int(r["round"]) > before]
    assert after and trained_rounds(acc_state) == before + len(after)
