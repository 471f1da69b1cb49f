"""Reading one value of a run config or node config: present, of its type,
and allowed, or a ``ConfigError`` naming the key, the bad value and what is
allowed (``config.py``, ``node_config.py``)."""

from collections.abc import Collection, Mapping

from blossom_app.common.presets import Scalar
from blossom_app.errors import ConfigError


def get(config: Mapping[str, Scalar], key: str, kind: type) -> Scalar:
    """``config[key]``, checked to be a ``kind`` (an int is a float too)."""
    if key not in config:
        raise ConfigError(key, None, f"a {kind.__name__}", "The key is missing.")
    value = config[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(key, value, f"a {kind.__name__}")
    return value


def optional(
    config: Mapping[str, Scalar], key: str, kind: type, default: Scalar
) -> Scalar:
    """``config[key]`` checked to be a ``kind``, or ``default`` when absent."""
    return get(config, key, kind) if key in config else default


def positive(config: Mapping[str, Scalar], key: str, kind: type) -> Scalar:
    """``config[key]``, a ``kind`` greater than 0."""
    value = get(config, key, kind)
    if value <= 0:
        raise ConfigError(key, value, f"a positive {kind.__name__}")
    return value


def choice(config: Mapping[str, Scalar], key: str, allowed: Collection[str]) -> str:
    """``config[key]``, one of the names in ``allowed``."""
    value = get(config, key, str)
    if value not in allowed:
        raise ConfigError(key, value, ", ".join(allowed))
    return value
