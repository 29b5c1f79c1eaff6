"""Facts the training worker posts to the app: each one a complete, immutable snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from model.api import NudgeReport, Probe, Sampled, SessionInfo

if TYPE_CHECKING:
    from nnio_tui.corpus_view import CorpusView


@dataclass(frozen=True)
class TrainingSnapshot:
    """Everything the loss panel and header show about training, at one moment.

    losses and val_losses are the recent history (oldest first), so a message that is
    dropped for a newer one loses nothing.
    """

    step: int
    loss: float | None
    val_loss: float | None
    lr: float | None
    tokens_per_s: float | None
    losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    running: bool
    dirty: bool


@dataclass
class SessionLoading(Message):
    """Opening the session made progress (importing torch, tokenizing, building the model)."""

    what: str
    fraction: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SessionLoading)


@dataclass
class SessionOpened(Message):
    """The session is ready; the window starts at `start` and holds `length` tokens."""

    info: SessionInfo
    corpus: CorpusView
    start: int
    length: int


@dataclass
class SessionFailed(Message):
    """The session could not be opened; `error` is one line for the user."""

    error: str


@dataclass
class SessionReset(Message):
    """The weights were re-initialised: step 0, fresh optimizer."""

    info: SessionInfo


@dataclass
class SessionClosed(Message):
    """The worker has stopped for good; the checkpoint was saved to saved_path if it was dirty.

    error: why the save failed; defect: the error that ended the worker while it quit (the
    save still ran).
    """

    saved_path: Path | None
    error: str | None = None
    defect: str | None = None


@dataclass
class StepBegan(Message):
    """One step (the s key) began; TrainingProgress, or CommandFailed, follows when it ends."""


@dataclass
class TrainingStarted(Message):
    """Continuous training began."""


@dataclass
class TrainingProgress(Message):
    """Training advanced (or its state changed): the latest complete snapshot."""

    snapshot: TrainingSnapshot

    def can_replace(self, message: Message) -> bool:
        # Each snapshot is complete, so a UI that falls behind may skip stale ones.
        return isinstance(message, TrainingProgress)


@dataclass
class TrainingStopped(Message):
    """Continuous training paused; reason is set when it stopped on an error."""

    reason: str | None = None


@dataclass
class ProbeReady(Message):
    """The network's output for a window, and its output before the last update (if any)."""

    start: int
    length: int
    probe: Probe
    before: Probe | None
    since: str | None = None  # what before was taken before: "the nudge", "training started"


@dataclass
class WindowChosen(Message):
    """The worker picked a new random window for the NewWindow command numbered number."""

    start: int
    length: int
    number: int


@dataclass
class Nudged(Message):
    """One update on one window only changed its label's probability."""

    start: int
    length: int
    report: NudgeReport


@dataclass
class TokenSampled(Message):
    """The model drew a next token for a window."""

    start: int
    length: int
    sampled: Sampled


@dataclass
class CheckpointSaved(Message):
    """A checkpoint was written."""

    path: Path


@dataclass
class CommandFailed(Message):
    """A command failed with a user-facing error; training is paused and the app stays usable."""

    error: str
    title: str = "paused"
    """What the notification is headed: what happened to training, or what could not be done."""
