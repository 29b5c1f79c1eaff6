"""The theme picked in the command palette, kept for the next launch.

A small JSON file in the user config folder. Like the last window, it is a convenience: a
file that cannot be read or written never stops the app.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _store() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("nnio-tui")) / "settings.json"


def _read() -> dict:
    try:
        data = json.loads(_store().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def saved_theme() -> str | None:
    """The theme last picked, or None."""
    theme = _read().get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(name: str) -> None:
    """Keep name as the theme, replacing the file atomically (other settings stay)."""
    data = {**_read(), "theme": name}
    store = _store()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=store.parent, prefix=".settings-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, store)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only home costs only the choice
