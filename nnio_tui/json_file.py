"""Small JSON files the app keeps for the user (the last windows, the theme).

They are conveniences: one that cannot be read counts as empty, and one that cannot be
written is skipped, so neither ever stops the app or its save.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def read_dict(path: Path) -> dict:
    """The JSON object in path; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_dict(path: Path, data: dict) -> None:
    """Replace path with data atomically; a folder that cannot be written skips it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a convenience lost, not the user's work
