"""The bridge from the app's training worker thread to model.api: commands in, snapshots out."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from model.api import NnioError, Probe, Session, StepReport
from nnio_tui.corpus_view import CorpusView
from nnio_tui.last_window import recall, remember
from nnio_tui.looker import Looker
from nnio_tui.messages import (
    CheckpointSaved,
    CommandFailed,
    Nudged,
    ProbeReady,
    SessionClosed,
    SessionFailed,
    SessionLoading,
    SessionOpened,
    SessionReset,
    StepBegan,
    TokenSampled,
    TrainingProgress,
    TrainingSnapshot,
    TrainingStarted,
    TrainingStopped,
    WindowChosen,
)
from nnio_tui.training_commands import (
    Command,
    Look,
    NewWindow,
    Nudge,
    Reset,
    Sample,
    Save,
    Step,
)

OpenSession = Callable[[Callable[[str, float], None]], Session]
"""Builds the session in the worker thread, reporting (what, fraction) as it goes."""


class OpenCancelled(Exception):
    """The app is closing while its session is still opening."""


class TrainingBridge:
    """Owns the session on the worker thread; the UI talks to it only through this class.

    The UI thread calls send(), resume(), pause() and request_quit(); the worker thread
    runs serve(), which does every session call and posts messages with complete snapshots.
    The session may be a model.remote.RemoteSession: the calls are the same, and close()
    ends its process once the run is saved.

    While training runs, a window moved by a key is probed at once by a second thread, the
    looker, where the session allows a probe beside a step (Session.probes_beside_steps):
    otherwise its bars would wait for the step, and maybe a validation, to end. Every
    command is numbered as it is sent, so that the window the last key chose wins whichever
    thread gets to it first, and a probe that a newer one has overtaken is not posted.
    """

    PROBE_K = 32
    # While training runs, a snapshot and a probe go to the UI at most this often. On 2 cores
    # (bench/app_overhead.py, 6 rounds of 10 s) posting every 0.1 s, i.e. after every step,
    # trained at 91% of headless speed with the UI thread at 6% of a core; every 0.5 s gave
    # 97% at 3%. The bars and curves still move twice a second.
    POST_EVERY_S = 0.5
    EVAL_EVERY = 50
    HISTORY = 2000
    # Measured with bench/app_overhead.py on 2 cores: key-to-screen p95 stayed under 50 ms
    # with torch's default 2 threads, which trained ~25% faster in the app than 1 thread.
    # So no thread cap and no sleep by default.
    YIELD_S = 0.0
    """Sleep after each continuous-training step, to leave the UI a gap; 0 means no sleep."""
    # bench/probe_latency.py, 2 cores, cpu preset, a key every 0.2 s on average while
    # training: a new window's probe was posted after p50 ~15 ms beside the step, ~110 ms
    # when it waited for the step.
    PROBE_BESIDE = True
    """Probe windows sent during training beside the step (the looker); False: after it."""

    def __init__(
        self,
        post: Callable[[Message], object],
        *,
        session: Session | None = None,
        open_session: OpenSession | None = None,
        context: int | None = None,
    ) -> None:
        if session is None and open_session is None:
            raise ValueError("give a session or an open_session factory")
        self._post = post
        self._session = session
        self._open_session = open_session
        self._context = context
        self._commands: deque[tuple[int, Command]] = deque()  # (number, command)
        self._sent = 0  # commands numbered so far
        self._window_sent = 0  # the number of the newest Look or Nudge sent
        self._wakeup = threading.Condition()
        self._running = threading.Event()
        self._quit = threading.Event()
        self._idle = threading.Event()
        # the window, the probes shown and their numbers: shared by the worker and the looker
        self._state = threading.Lock()
        self._window = (0, 1)
        self._window_number = 0  # of the command that chose the window
        self._probes_started = 0
        self._probe_posted = 0  # the number of the newest probe posted
        self._shown: Probe | None = None
        self._baseline: Probe | None = None
        self._baseline_since = "training started"
        self._looker: Looker | None = None  # while the session allows it (see _start_looker)
        self._beside = False  # the session's probes_beside_steps, read once it is open
        self._losses: deque[float] = deque(maxlen=self.HISTORY)
        self._val_losses: deque[float] = deque(maxlen=self.HISTORY)
        self._last: StepReport | None = None
        self._last_val: float | None = None
        self._opened_lr: float | None = None  # a resumed run's last rate, until a step reports
        self._last_post = 0.0
        self._announced = False
        self._checkpoint: str | None = None  # the run's, whose last window is remembered
        self._eval_due = False

    # -- UI thread -----------------------------------------------------------
    def window_sent_after(self, number: int) -> bool:
        """True if a Look or Nudge went out after command number (the app moved on since)."""
        with self._wakeup:
            return self._window_sent > number

    def send(self, command: Command) -> None:
        """Queue a command for the worker (a new window during training: for the looker)."""
        with self._wakeup:
            self._sent += 1
            if isinstance(command, Look | Nudge):
                self._window_sent = self._sent
            if (isinstance(command, Look) and self._running.is_set() and self.PROBE_BESIDE
                    and self._looker is not None):
                self._looker.offer(self._sent, command)
                return
            self._idle.clear()
            self._commands.append((self._sent, command))
            self._wakeup.notify()

    def resume(self) -> None:
        """Start continuous training."""
        with self._wakeup:
            self._idle.clear()
            self._running.set()
            self._wakeup.notify()

    def pause(self) -> None:
        """Pause continuous training after the current step."""
        with self._wakeup:
            self._running.clear()
            self._wakeup.notify()

    @property
    def running(self) -> bool:
        """Whether continuous training is on (as asked; the worker confirms with messages)."""
        return self._running.is_set()

    @property
    def saves_if_abandoned(self) -> bool:
        """Whether unsaved training survives this process ending without a save (a child
        process session saves it on its own)."""
        return bool(getattr(self._session, "saves_if_abandoned", False))

    def request_quit(self) -> None:
        """Stop after the current step, save if dirty, and end serve()."""
        with self._wakeup:
            self._idle.clear()
            self._quit.set()
            self._running.clear()
            self._wakeup.notify()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every command is handled and training is paused (tests use this).

        It waits for the worker, then for the looker: up to twice timeout in all.
        """
        looker = self._looker
        return self._idle.wait(timeout) and (looker is None or looker.idle.wait(timeout))

    # -- worker thread -------------------------------------------------------
    def serve(self, cancelled: Callable[[], bool]) -> None:
        """Open the session if needed, then handle commands until quit or cancelled.

        Args:
            cancelled: returns True when the worker was cancelled (the app is closing).
        """
        try:
            if not self._announced and not self._open(cancelled):
                return
            self._start_looker()
            self._loop(cancelled)
        except Exception as error:
            # A defect (not an NnioError, which the loop handles) while quitting would end
            # the app unsaved: save what the earlier steps made, then let the error through.
            if self._session is not None and self._quit.is_set():
                self._close(defect=f"{type(error).__name__}: {error}".splitlines()[0])
            raise
        finally:
            self._stop_looker()
            self._idle.set()

    def _open(self, cancelled: Callable[[], bool]) -> bool:
        if self._session is None:
            assert self._open_session is not None

            def progress(what: str, fraction: float) -> None:
                # Quitting while a big corpus tokenizes: end the open at its next report
                # rather than keep the closed app's process alive until it finishes.
                if cancelled() or self._quit.is_set():
                    raise OpenCancelled
                self._post(SessionLoading(what, fraction))

            try:
                self._session = self._open_session(progress)
            except OpenCancelled:
                return False
            except NnioError as error:
                self._post(SessionFailed(str(error)))
                return False
        session = self._session
        self._announced = True
        block = session.block_size
        info = session.info()
        self._checkpoint = info.checkpoint_path
        start, length = 0, self._context if self._context is not None else min(8, block)
        if self._context is None and self._checkpoint is not None:
            # a reopened run shows the window it was closed on
            start, length = recall(self._checkpoint) or (start, length)
        length = max(1, min(length, block, session.n_tokens - 1))
        start = max(0, min(start, session.n_tokens - length - 1))
        self._window = (start, length)
        # A resumed run continues its curves instead of starting them blank.
        losses, val_losses = session.loss_history()
        self._losses.extend(losses)
        self._val_losses.extend(val_losses)
        self._last_val = val_losses[-1] if val_losses else None
        self._opened_lr = info.lr
        self._beside = session.probes_beside_steps
        corpus = CorpusView(
            session, lambda line: self._post(CommandFailed(line, title="cannot show the tokens")))
        self._post(SessionOpened(info, corpus, start, length))
        self._post(TrainingProgress(self._snapshot()))
        self._probe_and_post(before=None)
        # with the first probe on screen, build what training needs while the user reads it
        session.prepare_training()
        return True

    def _loop(self, cancelled: Callable[[], bool]) -> None:
        was_running = False
        while not cancelled():
            if self._quit.is_set():
                self._close()
                return
            try:
                if self._running.is_set():
                    if not was_running:
                        was_running = True
                        with self._state:
                            self._baseline = self._shown
                            self._baseline_since = "training started"
                        self._last_post = 0.0
                        self._post(TrainingStarted())
                    while (numbered := self._next(timeout=0)) is not None:
                        self._handle(*numbered)
                    # after the keys, so a new window's probe does not wait for validation;
                    # then round again for the keys pressed while it ran
                    if self._eval_due:
                        self._evaluate()
                        continue
                    if self._running.is_set() and not self._quit.is_set():
                        self._train_once()
                    continue
                if was_running:
                    was_running = False
                    if self._eval_due:
                        self._evaluate()
                    self._post(TrainingProgress(self._snapshot()))
                    self._probe_and_post(self._baseline, since=self._baseline_since)
                    self._post(TrainingStopped())
                numbered = self._next(timeout=0.05)
                if numbered is not None:
                    self._handle(*numbered)
            except NnioError as error:
                # A diverged step or a device error: keep the session, pause, tell the user.
                self._running.clear()
                if was_running:
                    was_running = False
                    # progress is throttled, so the UI may be a few steps behind: catch it up
                    self._post(TrainingProgress(self._snapshot()))
                    self._post(TrainingStopped(str(error)))
                self._post(CommandFailed(str(error)))
        # Cancelled with no quit: the app ended some other way (a crash). Keep the training.
        self._close()

    def _next(self, timeout: float) -> tuple[int, Command] | None:
        with self._wakeup:
            if not self._commands and timeout > 0:
                if not self._running.is_set() and not self._quit.is_set():
                    self._idle.set()
                self._wakeup.wait(timeout)
            if not self._commands:
                return None
            numbered = self._commands.popleft()
            # Held arrow keys queue many windows; only the newest needs a probe.
            while isinstance(numbered[1], Look) and self._commands and isinstance(
                self._commands[0][1], Look
            ):
                numbered = self._commands.popleft()
            return numbered

    def _handle(self, number: int, command: Command) -> None:
        session = self._session
        assert session is not None
        match command:
            case Look():
                self._look(number, command)
            case NewWindow(length):
                # a window keyed after this command wins: the app stays there
                if not self.window_sent_after(number):
                    start = session.random_window(length)
                    self._choose_window((start, length), number)
                    self._post(WindowChosen(start, length, number))
                    self._probe_and_post(before=None)
            case Step():
                before = self._shown
                self._post(StepBegan())  # a big model's step takes minutes on a CPU
                self._record(session.step())
                self._post(TrainingProgress(self._snapshot()))
                self._probe_and_post(before, since="the step")
            case Nudge(start, length):
                with self._state:
                    moved = (start, length) != self._window
                if moved and self._choose_window((start, length), number):
                    self._probe_and_post(before=None)
                before = self._shown
                report = session.nudge(start, length)
                self._post(Nudged(start, length, report))
                self._post(TrainingProgress(self._snapshot(step=report.step)))
                self._probe_and_post(before, since="the nudge")
            case Sample(start, length, temperature):
                ids = session.token_ids(start, start + length)
                # the step it was drawn at reaches the app first: the sample holds until the next
                self._post(TrainingProgress(self._snapshot()))
                self._post(TokenSampled(start, length, session.sample(ids, temperature=temperature)))
            case Save():
                self._post(CheckpointSaved(session.save()))
                self._post(TrainingProgress(self._snapshot()))  # no longer unsaved
            case Reset():
                session.reset()
                self._losses.clear()
                self._val_losses.clear()
                self._last, self._last_val, self._opened_lr = None, None, None
                self._eval_due = False
                self._post(SessionReset(session.info()))
                self._post(TrainingProgress(self._snapshot()))
                with self._state:  # the bars compare with the fresh weights, not the old ones
                    self._shown = self._baseline = None
                self._probe_and_post(before=None)
                with self._state:
                    self._baseline_since = "the reset"

    def _train_once(self) -> None:
        assert self._session is not None
        self._record(self._session.step(), later=True)
        if self.YIELD_S > 0:
            time.sleep(self.YIELD_S)
        now = time.monotonic()
        # Throttle at the source: the UI shares two cores with training.
        if now - self._last_post >= self.POST_EVERY_S:
            self._last_post = now
            # probe first, then post both together: the UI repaints once for the pair
            self._probe_and_post(self._baseline, first=TrainingProgress(self._snapshot()),
                                 since=self._baseline_since)

    def _record(self, report: StepReport, *, later: bool = False) -> None:
        """Keep a step's loss, and validate every EVAL_EVERY steps.

        Args:
            report: the step's report.
            later: leave a due validation to the loop, which first handles the commands
                that came during the step (continuous training).
        """
        self._last = report
        self._losses.append(report.loss)
        if report.val_loss is not None:
            self._add_val(report.val_loss)
        elif report.step % self.EVAL_EVERY == 0:
            self._eval_due = True
            if not later:
                self._evaluate()

    def _evaluate(self) -> None:
        assert self._session is not None
        self._eval_due = False
        self._add_val(self._session.evaluate())

    def _add_val(self, val: float) -> None:
        self._last_val = val
        self._val_losses.append(val)

    def _snapshot(self, step: int | None = None) -> TrainingSnapshot:
        """What the loss panel shows; it never raises, as the error path posts one too."""
        assert self._session is not None
        last = self._last
        try:
            if step is None:
                step = last.step if last is not None else self._session.info().step
            dirty = self._session.dirty
        except NnioError:
            # the session cannot answer (its process has died): say what this side knows
            step = step if step is not None else (last.step if last is not None else 0)
            dirty = True
        return TrainingSnapshot(
            step=step,
            loss=last.loss if last else (self._losses[-1] if self._losses else None),
            val_loss=self._last_val,
            lr=last.lr if last else self._opened_lr,
            tokens_per_s=last.tokens_per_s if last else None,
            losses=tuple(self._losses),
            val_losses=tuple(self._val_losses),
            running=self._running.is_set(),
            dirty=dirty,
        )

    def _look(self, number: int, look: Look) -> None:
        """Show this window's probe, unless a command sent after it chose another window."""
        if self._choose_window((look.start, look.length), number):
            self._probe_and_post(before=None)

    def _choose_window(self, window: tuple[int, int], number: int) -> bool:
        """Make window the current one, unless a command sent after this one chose another."""
        with self._state:
            if number < self._window_number:
                return False
            self._window, self._window_number = window, number
            return True

    def _probe_and_post(self, before: Probe | None, first: Message | None = None,
                        since: str | None = None) -> None:
        """Probe the current window and post it, after first if given.

        Args:
            before: the probe to compare with, if it is of the same window.
            first: a message to post just before the probe (even if the probe is not
                posted), so the UI repaints once for both.
            since: what before was taken before, for the bars to say ("the nudge").

        The probe is not posted if, while it ran, another thread posted a newer probe or a
        newer window was chosen (whose own probe is then on its way).
        """
        assert self._session is not None
        with self._state:
            start, length = self._window
            self._probes_started += 1
            number = self._probes_started
        probe = self._session.probe(start, length, k=self.PROBE_K)
        with self._state:  # posted under the lock: the UI gets probes in the order they began
            if first is not None:
                self._post(first)
            if number < self._probe_posted or (start, length) != self._window:
                return
            self._probe_posted = number
            if before is not None and before.context_ids != probe.context_ids:
                before = None
            if self._shown is None or self._shown.context_ids != probe.context_ids:
                self._baseline = probe if self._running.is_set() else None
                self._baseline_since = "this window came up"
            self._shown = probe
            self._post(ProbeReady(start, length, probe, before, since if before else None))

    # -- looker thread -------------------------------------------------------
    def _look_now(self, number: int, look: Look) -> None:
        """Probe a window sent during training, on the looker's thread."""
        try:
            self._look(number, look)
        except Exception:  # noqa: BLE001 - the worker reports it, as it would alone
            # The worker takes the window over: its probe meets the same trouble and
            # reports it its usual way (an error pauses training; a bug is not hidden).
            with self._wakeup:
                self._idle.clear()
                self._commands.append((number, look))
                self._wakeup.notify()

    def _start_looker(self) -> None:
        if self._looker is None and self._beside:
            self._looker = Looker(self._look_now)
            self._looker.start()

    def _stop_looker(self) -> None:
        """End the looker; a window it had not yet taken is dropped (the app is closing)."""
        with self._wakeup:  # send() queues for the worker from now
            looker, self._looker = self._looker, None
        if looker is not None:
            looker.stop()

    def _close(self, defect: str | None = None) -> None:
        assert self._session is not None
        self._stop_looker()  # before the session closes under a probe of its
        saved: Path | None = None
        try:
            if self._session.dirty:
                saved = self._session.save_or_rescue()
        except NnioError as error:
            self._post(SessionClosed(None, str(error), defect))
            return
        finally:
            # a session in a child process (model.remote) ends it here
            close = getattr(self._session, "close", None)
            if close is not None:
                close()
            if self._checkpoint is not None:
                with self._state:
                    window = self._window
                remember(self._checkpoint, *window)
        self._post(SessionClosed(saved, defect=defect))
