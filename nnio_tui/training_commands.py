"""What the UI asks of the training bridge: one frozen dataclass per key's command."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Look:
    """Probe this window (it became the current one)."""

    start: int
    length: int


@dataclass(frozen=True)
class Step:
    """One batch update."""


@dataclass(frozen=True)
class Nudge:
    """One update on this window only."""

    start: int
    length: int


@dataclass(frozen=True)
class NewWindow:
    """Pick a random window of this length."""

    length: int


@dataclass(frozen=True)
class Sample:
    """Draw the next token after this window."""

    start: int
    length: int
    temperature: float = 1.0


@dataclass(frozen=True)
class Save:
    """Write a checkpoint."""


@dataclass(frozen=True)
class Reset:
    """Fresh random weights, step 0."""


Command = Look | Step | Nudge | NewWindow | Sample | Save | Reset
