"""What identifies a modality's ``features`` in the data cache's key: the same
in every process, different when the feature's code or parameters change.

A feature may be any callable: a plain function or a lambda, a
``functools.partial``, a bound method, or an object with ``__call__`` (like
``LogMel``). Its identity is

- where it is defined: module, qualified name, and for a function its
  bytecode and constants;
- the source file that defines it (a digest: an edit there changes the key,
  including to a helper the feature calls in the same file);
- its parameters: a partial's arguments, a function's defaults and closure
  values, an object's attributes, each by ``repr`` (a callable among them by
  its own identity, an array by its bytes).

A parameter whose ``repr`` shows a memory address (``<... at 0x7f...>``)
differs in every process, so the cache could never find its arrays again:
such a feature cannot be keyed, and ``UnkeyableFeature`` says which parameter.
"""

import functools
import hashlib
import inspect
import re
import types
from importlib import metadata
from pathlib import Path

import numpy as np

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class UnkeyableFeature(ValueError):
    """A feature whose identity would differ between processes."""


def feature_identity(features: object) -> list:
    """A JSON-able identity of ``features`` (see the module docstring)."""
    if isinstance(features, functools.partial):
        return [
            "partial",
            feature_identity(features.func),
            _stable(list(features.args)),
            _stable(dict(features.keywords)),
        ]
    if inspect.ismethod(features):
        return [
            "method",
            feature_identity(features.__func__),
            _state(features.__self__),
        ]
    if inspect.isfunction(features):
        function = inspect.unwrap(features)
        closure = [cell.cell_contents for cell in function.__closure__ or ()]
        return [
            "function",
            function.__module__,
            function.__qualname__,
            _code(function.__code__),
            _source(function),
            _stable([function.__defaults__, function.__kwdefaults__, closure]),
        ]
    if isinstance(features, types.BuiltinFunctionType | np.ufunc):
        module = getattr(features, "__module__", None) or "builtins"
        name = getattr(features, "__qualname__", features.__name__)
        return ["builtin", module, name, _version(module)]
    if callable(features):
        kind = type(features)
        return [
            "object",
            kind.__module__,
            kind.__qualname__,
            _source(kind),
            _state(features),
        ]
    raise UnkeyableFeature(f"{features!r} is not callable")


def defined_in(features: object) -> str:
    """The module that defines ``features`` (a partial's or method's function)."""
    while isinstance(features, functools.partial) or inspect.ismethod(features):
        features = getattr(features, "func", None) or features.__func__
    if inspect.isfunction(features):
        return features.__module__
    return type(features).__module__


def _code(code: types.CodeType) -> list:
    """A function's bytecode, constants (nested functions' too) and names."""
    consts = [
        _code(const) if isinstance(const, types.CodeType) else repr(const)
        for const in code.co_consts
    ]
    return [code.co_code.hex(), consts, list(code.co_names)]


def _source(thing: object) -> str | None:
    """A digest of the file defining ``thing``; None where there is none
    (defined in an interactive session)."""
    try:
        path = inspect.getsourcefile(thing)
    except TypeError:
        return None
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _state(instance: object) -> object:
    """An object's parameters: its attributes, or its ``repr``."""
    attributes = getattr(instance, "__dict__", None)
    if attributes is None and hasattr(type(instance), "__slots__"):
        slots = type(instance).__slots__
        attributes = {name: getattr(instance, name, None) for name in slots}
    return _stable(attributes if attributes is not None else instance)


def _stable(value: object) -> object:
    """``value`` as JSON-able parts that are the same in every process."""
    if isinstance(value, np.ndarray):
        return ["array", value.dtype.str, value.shape, _bytes_digest(value)]
    if isinstance(value, dict):
        return {str(key): _stable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stable(item) for item in value]
    if callable(value) and not isinstance(value, type):
        return feature_identity(value)
    text = repr(value)
    if _ADDRESS.search(text):
        raise UnkeyableFeature(
            f"its parameter {text} shows a memory address, which differs in every "
            "process"
        )
    return text


def _bytes_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _version(module: str) -> str:
    """The installed version of the package ``module`` belongs to."""
    try:
        return metadata.version(module.split(".")[0])
    except metadata.PackageNotFoundError:
        return ""
