"""BLOSSOM: block-wise multimodal federated learning on Flower."""

from pathlib import Path

__version__ = "0.1.0"

#: The app directory: where ``pyproject.toml`` and ``conf/`` are, in a checkout
#: as in an installed FAB.
APP_DIR = Path(__file__).resolve().parents[1]
