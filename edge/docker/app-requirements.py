"""Print the app's dependencies from pyproject.toml, one a line, minus some.

The container recipes install the app with ``pip install --no-deps`` after its
dependencies, so that what the base image or a device's own index provides
(flwr in Flower's images, CUDA torch on a Jetson, onnxruntime-gpu) is not
replaced by a generic wheel:

    python3 app-requirements.py pyproject.toml --except flwr torch > requirements.txt
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 name: lowercase, runs of ``-_.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependencies(pyproject: Path) -> dict[str, str]:
    """``[project].dependencies`` of ``pyproject``: canonical name -> requirement."""
    lines = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    named = {}
    for line in lines:
        match = NAME.match(line)
        if match is None:
            raise ValueError(f"cannot read a package name in '{line}'")
        named[canonical(match.group(1))] = line
    return named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument(
        "--except",
        dest="excluded",
        nargs="*",
        default=[],
        metavar="NAME",
        help="packages the image already has or installs from another index",
    )
    args = parser.parse_args(argv)
    try:
        named = dependencies(args.pyproject)
    except (OSError, ValueError, KeyError) as error:  # TOMLDecodeError: ValueError
        parser.error(f"cannot read [project].dependencies of {args.pyproject}: {error}")
    excluded = {canonical(name) for name in args.excluded}
    if unknown := sorted(excluded - set(named)):
        parser.error(
            f"--except {' '.join(unknown)}: not a dependency of the app "
            f"(it has {', '.join(sorted(named))})"
        )
    print("\n".join(line for name, line in named.items() if name not in excluded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
