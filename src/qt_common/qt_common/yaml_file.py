"""Reading a user's YAML file (topic map, joy mapping, LeRobot import mapping) with one kind of error.

Why one place: each of those files is hand-written by a robot user, and a missing file or a YAML
syntax error must come back as that feature's own error type naming the file, never as a
traceback from the YAML parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_yaml(path: str | Path, what: str, error: type[Exception]) -> Any:
    """The parsed content of ``path``; ``error("<what> <path>: ...")`` if unreadable or not YAML."""
    import yaml

    path = Path(path).expanduser()
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML ({exc})") from None
