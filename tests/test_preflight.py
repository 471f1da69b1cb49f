"""`blossom run` and `blossom sweep` check the data before starting Flower: a
natural partition that does not give one client per group is said once, naming
`modality-mix` and a mix that fits, and nothing starts."""

import time
from pathlib import Path

import pytest

from blossom_app.benchmarks import get_task
from blossom_app.common.modality_mix import parse_mix
from blossom_app.data import count_groups
from blossom_app.tools.cli import main
from blossom_app.tools.preflight import scaled

APP = Path(__file__).parents[1]
WATCH = get_task("watch")


@pytest.mark.timeout(120)
def test_a_natural_partition_of_the_wrong_size_is_said_once_with_the_mix_to_use(
    capsys, watch_dataset
):
    groups = count_groups(WATCH)
    assert groups == len(set(watch_dataset[WATCH.group_column]))
    start = time.monotonic()
    bad = "partitioner='natural' modality-mix='3-3-2'"
    assert main(["run", str(APP), "--run-config", bad]) == 2
    assert time.monotonic() - start < 60  # refused before Flower starts
    error = capsys.readouterr().err
    assert error.count("Invalid value") == 1 and "'modality-mix'" in error
    fitting = scaled(parse_mix("3-3-2", WATCH), groups)
    assert f"\"modality-mix='{fitting}'\"" in error and "num-supernodes" not in error
    assert parse_mix(fitting, WATCH).num_clients == groups
    # a sweep's cell is refused the same way, before anything runs
    sweep = ["sweep", "--app", str(APP), "--partitioners", "natural"]
    assert main([*sweep, "--mixes", "3-3-2", "--policies", "full-model"]) == 2
    assert "a mix of" in capsys.readouterr().err


def test_a_mix_is_scaled_keeping_its_sets_and_proportions():
    mix = parse_mix("3-3-4", WATCH)
    assert scaled(mix, 10) == "acc=3,gyro=3,acc+gyro=4"
    assert scaled(mix, 12) == "acc=4,gyro=3,acc+gyro=5"  # largest remainders
    assert scaled(mix, 5) == "acc=2,gyro=1,acc+gyro=2"
    assert scaled(parse_mix("acc=1,gyro=9", WATCH), 5) == "acc=1,gyro=4"
