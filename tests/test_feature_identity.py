"""A modality's ``features`` may be any callable: a plain function, a lambda,
a ``functools.partial``, a closure, a bound method or an object. The data
cache keys it the same way in every process and anew when its code or its
parameters change; one that cannot be keyed is refused once, at start, naming
the modality, the dataset and what to do."""

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blossom_app.benchmarks import get_task
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.presets import app_defaults
from blossom_app.data.cache import client_data_path
from blossom_app.data.feature_identity import UnkeyableFeature, feature_identity
from blossom_app.errors import DataError
from blossom_app.tools.cli import main

APP = Path(__file__).parents[1]
FEATURES = textwrap.dedent(
    """
    import functools
    from dataclasses import dataclass

    import numpy as np
    from torch import nn

    from blossom_app.benchmarks import ModalitySpec, Task

    def double(x):
        return np.asarray(x, np.float32) * 2

    def scaled(x, factor=1.0):
        return np.asarray(x, np.float32) * factor

    halve = functools.partial(scaled, factor=0.5)
    square = lambda x: np.asarray(x, np.float32) ** 2  # noqa: E731

    @dataclass(frozen=True)
    class Clip:
        length: int = 4

        def __call__(self, x):
            return np.asarray(x, np.float32)[: self.length]

        def first(self, x):
            return np.asarray(x, np.float32)[:1]

    def make_offset(offset):
        def shifted(x):
            return np.asarray(x, np.float32) + offset
        return shifted

    ALL = {
        "function": double, "partial": halve, "lambda": square,
        "object": Clip(3), "method": Clip(2).first, "closure": make_offset(1.0),
        "builtin": np.asarray,
    }

    def task(name, features):
        return Task(
            name=name,
            modalities=(ModalitySpec("left", (8, 2), features=features),),
            class_names=("a", "b"),
            encoder=lambda spec: nn.Sequential(nn.Flatten(), nn.Linear(16, 16)),
            embed_dim=16, fusion_dim=16, head_hidden=8, source="none.parquet",
        )

    PLAIN = task("plain", double)
    UNKEYABLE = task("unkeyable", functools.partial(scaled, factor=object()))
    """
)


@pytest.fixture
def features(tmp_path, monkeypatch):
    """The module above as a plug-in's file, importable here and in a child."""
    (tmp_path / "feats.py").write_text(FEATURES)
    monkeypatch.syspath_prepend(str(tmp_path))
    get_task.cache_clear()
    yield tmp_path
    get_task.cache_clear()
    sys.modules.pop("feats", None)


def identities_in_a_new_process(where) -> dict:
    script = (
        "import json, feats; "
        "from blossom_app.data.feature_identity import feature_identity; "
        "print(json.dumps({k: feature_identity(f) for k, f in feats.ALL.items()}))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "", "HOME": str(where)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout)


@pytest.mark.timeout(120)
def test_every_kind_of_callable_is_keyed_alike_in_every_process(features):
    import feats

    here = {kind: feature_identity(f) for kind, f in feats.ALL.items()}
    assert json.loads(json.dumps(here)) == identities_in_a_new_process(features)
    # a plain function's task gets a cache file, the same one in a new process
    settings = {"partitioner": "iid", "seed": 42}
    path = client_data_path(feats.PLAIN, ["none"], settings)
    script = (
        "import feats; from blossom_app.data.cache import client_data_path; "
        f"print(client_data_path(feats.PLAIN, ['none'], {settings!r}))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(features), "PATH": "", "HOME": str(features)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip().rsplit("/", 1)[1] == path.name


def test_the_key_changes_with_the_features_code_and_parameters(features):
    import feats

    def key(feature) -> str:
        return json.dumps(feature_identity(feature))

    assert key(feats.halve) != key(functools.partial(feats.scaled, factor=0.25))
    assert key(feats.make_offset(1.0)) != key(feats.make_offset(2.0))
    assert key(feats.Clip(3)) != key(feats.Clip(4))
    assert key(feats.Clip(3)) == key(feats.Clip(3))
    before = key(feats.double)
    edited = FEATURES.replace("np.float32) * 2", "np.float32) * 3")
    (features / "feats.py").write_text(edited)
    sys.modules.pop("feats")
    import feats as again

    assert key(again.double) != before


def test_a_feature_that_cannot_be_keyed_is_refused_once_at_start(features, capsys):
    import feats

    with pytest.raises(UnkeyableFeature, match="memory address"):
        feature_identity(feats.UNKEYABLE.modalities[0].features)
    config = {**app_defaults(), "dataset": "feats:UNKEYABLE"}
    with pytest.raises(DataError) as error:
        ExperimentConfig.from_run_config(config)
    message = str(error.value)
    assert "modality 'left' of dataset 'unkeyable'" in message
    assert "(defined in feats)" in message and "a repr that is the same" in message
    # `blossom run` says it before starting anything
    assert main(["run", str(APP), "--run-config", "dataset='feats:UNKEYABLE'"]) == 2
    assert capsys.readouterr().err.count("cannot be cached") == 1
