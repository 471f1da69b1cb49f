"""The scale fixture (``benchmarks/synthetic``): seeded, watch's schema, through
the real loading, partitioning and caching path, and learnable."""

import numpy as np
import torch

from blossom_app.benchmarks import get_task
from blossom_app.benchmarks.synthetic import WINDOWS_PER_SUBJECT, synthetic_dataset
from blossom_app.common.model import build_model
from blossom_app.common.training import TrainingSettings, evaluate, train
from blossom_app.data import DataSettings, count_groups, load_client_data

SYNTHETIC, WATCH = get_task("synthetic"), get_task("watch")


def test_it_is_seeded_and_has_watchs_schema():
    one, again, other = (synthetic_dataset(48, seed) for seed in (0, 0, 1))

    assert one.features == again.features
    np.testing.assert_array_equal(one["acc"], again["acc"])
    assert not np.array_equal(np.asarray(one["acc"]), np.asarray(other["acc"]))
    assert np.asarray(one["acc"]).shape == (48, *WATCH.modality("acc").shape)
    assert one["subject"] == [i // WINDOWS_PER_SUBJECT for i in range(48)]
    assert one.features["label"].names == list(WATCH.class_names)


def test_many_clients_load_through_the_real_path(tmp_path):
    rows = 50 * WINDOWS_PER_SUBJECT
    source = tmp_path / "synthetic.parquet"
    synthetic_dataset(rows).to_parquet(str(source))
    settings = DataSettings(
        SYNTHETIC, source=str(source), partitioner="natural", num_partitions=50
    )

    assert count_groups(SYNTHETIC, str(source)) == 50
    sizes = []
    for partition in (0, 17, 49):
        data = load_client_data(settings, partition, ("acc",))
        sizes.append(len(data.train) + len(data.test))
        assert len(data.test) > 0 and set(data.train.inputs) == {"acc"}
    # one subject each (the in-order split drops the window at its cut)
    assert sizes == [WINDOWS_PER_SUBJECT - 1] * 3


def test_either_modality_alone_learns_it(tmp_path):
    source = tmp_path / "synthetic.parquet"
    synthetic_dataset(700, seed=3).to_parquet(str(source))
    settings = DataSettings(SYNTHETIC, source=str(source), num_partitions=1)
    for modality in ("acc", "gyro"):
        data = load_client_data(settings, 0, (modality,))
        model = build_model(SYNTHETIC, (modality,), "concat", seed=0)
        model.fit_normalization(data.train)
        recipe = TrainingSettings(epochs=10, optimizer="adamw", learning_rate=0.003)
        cpu = torch.device("cpu")
        train(model, data.train, recipe, server_round=1, device=cpu, seed=0)

        result = evaluate(
            model, data.test, num_classes=SYNTHETIC.num_classes, device=cpu
        )

        assert result.accuracy > 0.6, (modality, result)  # 7 classes: chance 0.14
