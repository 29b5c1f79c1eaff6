"""The theme picked in the command palette, kept for the next launch.

A small JSON file in the user config folder. Like the last window, it is a convenience: a
file that cannot be read or written never stops the app.
"""

from __future__ import annotations

from pathlib import Path

from nnio_tui.json_file import read_dict, write_dict


def _store() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("nnio-tui")) / "settings.json"


def _read() -> dict:
    return read_dict(_store())


def saved_theme() -> str | None:
    """The theme last picked, or None."""
    theme = _read().get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(name: str) -> None:
    """Keep name as the theme, replacing the file atomically (other settings stay)."""
    write_dict(_store(), {**_read(), "theme": name})  # a read-only home costs the choice
