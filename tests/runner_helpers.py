"""The torch-free edge runner (edge/run_model.py) as the tests use it: loaded
as a module, run in a process where torch cannot be imported, and its
prediction lines parsed."""

import importlib.util
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "edge" / "run_model.py"

# sys.modules[name] = None makes "import name" raise ImportError.
_WITHOUT_TORCH = (
    "import runpy, sys\n"
    "sys.modules['torch'] = sys.modules['blossom_app'] = None\n"
    "try:\n"
    "    import torch\n"
    "except ImportError:\n"
    "    print('torch is not importable')\n"
    "else:\n"
    "    sys.exit('torch was importable')\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def load_runner():
    spec = importlib.util.spec_from_file_location("run_model", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_without_torch(*arguments: str) -> subprocess.CompletedProcess:
    """``python edge/run_model.py *arguments`` where ``import torch`` (and
    ``import blossom_app``) fails; its first output line says so."""
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(RUNNER), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


def prediction_lines(output: str) -> list[tuple]:
    """The runner's ``index, class, probability`` lines, parsed."""
    lines = output.splitlines()
    start = lines.index("window\tclass\tprobability") + 1
    rows = [line.split("\t") for line in lines[start:] if "\t" in line]
    return [(int(index), name, float(prob)) for index, name, prob in rows]


def assert_predicts_without_torch(
    result: subprocess.CompletedProcess, classes: list[str], probabilities
) -> None:
    """``result`` (of ``run_without_torch``) ran without torch and predicted,
    per window, the class of ``probabilities`` (``windows x classes``, the
    torch model's) with its probability, to 1e-3."""
    import numpy as np

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch is not importable\n")
    predicted = prediction_lines(result.stdout)
    assert [name for _, name, _ in predicted] == [
        classes[i] for i in probabilities.argmax(1)
    ]
    np.testing.assert_allclose(
        [p for _, _, p in predicted], probabilities.max(1), atol=1e-3
    )
