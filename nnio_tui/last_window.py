"""Where each run's window was when the app closed, so that reopening the run shows it again.

A small JSON map, checkpoint path -> [start, length], in the user state folder. It is a
convenience: a store that cannot be read or written is treated as empty and never stops the
app or its save.
"""

from __future__ import annotations

from pathlib import Path

from nnio_tui.json_file import read_dict, write_dict

KEPT = 200  # runs remembered; the oldest is forgotten first


def _store() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("nnio-tui")) / "windows.json"


def _read() -> dict[str, list[int]]:
    return read_dict(_store())


def recall(checkpoint: str) -> tuple[int, int] | None:
    """The (start, length) last shown for this checkpoint, or None."""
    entry = _read().get(checkpoint)
    if (isinstance(entry, list) and len(entry) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in entry)
            and entry[0] >= 0 and entry[1] >= 1):
        return entry[0], entry[1]
    return None


def remember(checkpoint: str, start: int, length: int) -> None:
    """Keep (start, length) for this checkpoint, replacing the store atomically."""
    data = _read()
    data.pop(checkpoint, None)  # re-added last: the dict's order is the age
    data[checkpoint] = [start, length]
    # a window not remembered costs the user one keypress
    write_dict(_store(), dict(list(data.items())[-KEPT:]))
