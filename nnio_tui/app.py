"""NnioApp: a small GPT's input window and next-token probabilities, live while it trains."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.events import Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState, get_current_worker

from model.api import (
    CheckpointError,
    Chunk,
    NudgeReport,
    Probe,
    Sampled,
    Session,
    SessionInfo,
    before_reset_path,
    holds_training,
)
from nnio_tui import messages
from nnio_tui.corpus_view import CorpusView
from nnio_tui.hangup import HangUpSafeWriter, hang_up_safe
from nnio_tui.messages import TrainingSnapshot
from nnio_tui.percent import pct
from nnio_tui.theme_choice import save_theme, saved_theme
from nnio_tui.training import TrainingBridge
from nnio_tui.training_commands import Look, NewWindow, Nudge, Reset, Sample, Save, Step
from nnio_tui.widgets.confirm_reset import ConfirmReset
from nnio_tui.widgets.context_window import ContextWindow
from nnio_tui.widgets.help_screen import HelpScreen
from nnio_tui.widgets.info_header import InfoHeader
from nnio_tui.widgets.loading_view import LoadingView
from nnio_tui.widgets.loss_chart import LossChart
from nnio_tui.widgets.next_token_bars import NextTokenBars
from nnio_tui.widgets.token_chunks import TokenChunks
from nnio_tui.widgets.too_small import TooSmall

MIN_SIZE = (80, 24)


def _exit_now(code: int) -> None:
    os._exit(code)  # skips the wait for a worker thread stuck in a step (tests replace it)


# (key, shown as, action, footer label, help text, in footer)
KEYS = [
    ("space", "space", "toggle_run", "Run/pause", "run or pause training", True),
    ("s", "s", "step", "Step", "one batch step", True),
    ("u", "u", "nudge", "Nudge", "one update on this window only; pauses training", True),
    ("n", "n", "new_window", "New", "a new random window", True),
    ("left", "←", "slide(-1)", "Slide", "slide the window one token left", False),
    ("right", "→", "slide(1)", "Slide", "slide the window one token right", False),
    ("left_square_bracket", "[", "resize_context(-1)", "Shorter", "shorter context", False),
    ("right_square_bracket", "]", "resize_context(1)", "Longer", "longer context", False),
    ("i", "i", "toggle_ids", "Ids", "token ids on or off", False),
    ("pageup", "pgup", "scroll_tokens(-1)", "Scroll up", "scroll the token view up a page", False),
    ("pagedown", "pgdn", "scroll_tokens(1)", "Scroll down", "scroll the token view down a page",
     False),
    ("g", "g", "sample", "Sample", "sample the next token and show how it was chosen", True),
    ("ctrl+s", "ctrl+s", "save", "Save", "save a checkpoint", False),
    ("r", "r", "reset", "Reset", "reset to random weights (asks first)", False),
    ("question_mark,f1", "?", "help", "Help", "every key and what it does (f1 too)", True),
    ("q", "q", "quit", "Quit", "quit after the step, saving the run; q twice more: at once",
     True),
]


# keys the help shows on one row, so that the whole list fits on an 80x24 screen
HELP_PAIRS = {
    ("←", "→"): "slide the window one token left or right",
    ("[", "]"): "shorter or longer context",
    ("pgup", "pgdn"): "scroll the token view a page up or down",
}

# what the help lists beside the keys
HELP_EXTRAS = [
    ("click", "a token in the token view makes it the label"),
    ("ctrl+p", "the command palette: every key by name, themes, a screenshot"),
]

# the keys' actions that need an open session (all but help and quit)
_SESSION_ACTIONS = {action.partition("(")[0] for _, _, action, *_ in KEYS} - {"help", "quit"}


def help_rows() -> list[tuple[str, str]]:
    """The help's (keys as shown, what they do) rows: KEYS with HELP_PAIRS joined, then
    HELP_EXTRAS."""
    seconds = {first: second for first, second in HELP_PAIRS}
    rows: list[tuple[str, str]] = []
    for _, shown, _, _, text, _ in KEYS:
        if shown in seconds:
            second = seconds[shown]
            rows.append((f"{shown} {second}", HELP_PAIRS[shown, second]))
        elif shown not in seconds.values():
            rows.append((shown, text))
    return rows + HELP_EXTRAS


class NnioApp(App[int]):
    """Shows the network's input (a window of tokens) and output (next-token probabilities).

    One thread worker owns the session (itself usually a model.remote.RemoteSession, whose
    training runs in a child process); the app owns the state (reactives) and binds it
    into the panels, which only draw it. The app's reactives never repaint by themselves: an
    App reactive repaints the whole screen, where the bound panel repaints only its own box.
    """

    CSS_PATH = "app.tcss"
    TITLE = "nnio-tui"
    BINDINGS = [
        Binding(key, action, label, key_display=shown, show=footer)
        for key, shown, action, label, _, footer in KEYS
    ] + [Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    info: reactive[SessionInfo | None] = reactive(None, repaint=False)
    title_hint = reactive("", repaint=False)
    open_failure: reactive[str | None] = reactive(None, repaint=False)  # why it did not open
    corpus: reactive[CorpusView | None] = reactive(None, repaint=False)
    block_size = reactive(0, repaint=False)
    window_start = reactive(0, repaint=False)
    context = reactive(1, repaint=False)
    show_ids = reactive(False, repaint=False)
    window_chunks: reactive[tuple[Chunk, ...]] = reactive(tuple, repaint=False)
    probe: reactive[Probe | None] = reactive(None, repaint=False)
    before: reactive[Probe | None] = reactive(None, repaint=False)
    before_since: reactive[str | None] = reactive(None, repaint=False)
    probe_stale = reactive(False, repaint=False)
    nudge: reactive[NudgeReport | None] = reactive(None, repaint=False)
    sampled: reactive[Sampled | None] = reactive(None, repaint=False)
    training: reactive[TrainingSnapshot | None] = reactive(None, repaint=False)
    step = reactive(0, repaint=False)
    running = reactive(False, repaint=False)
    stepping = reactive(False, repaint=False)  # one step (s) under way
    held_out = reactive(False, repaint=False)  # the window's label is validation text

    def __init__(
        self,
        open_session: Callable[[Callable[[str, float], None]], Session] | None = None,
        context: int | None = None,
        title_hint: str = "",
        *,
        session: Session | None = None,
        low_colour: bool | None = None,
    ) -> None:
        """Args:
        open_session: builds the session on the worker thread, given an on_progress callback.
        context: the first window's length; None picks min(8, block_size).
        title_hint: what the header says while the session opens.
        session: a ready session instead of open_session (tests).
        low_colour: style chunks for 16-colour or NO_COLOR terminals; None detects it.
        """
        super().__init__()
        self.bridge = TrainingBridge(
            self.post_message, session=session, open_session=open_session, context=context
        )
        self.saved_path: Path | None = None
        self.set_reactive(NnioApp.title_hint, title_hint)
        self._quitting = False
        self._quit_presses = 0  # q or ctrl+c pressed again while stopping
        self._worker: Worker[None] | None = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._low_colour = low_colour
        # the last step the nudge and sample lines were shown at; a later one clears them
        self._lines_step = 0
        self._nudged_since_reset = False  # a nudge moves the weights without a step

    def compose(self) -> ComposeResult:
        yield InfoHeader().data_bind(NnioApp.info, NnioApp.step, NnioApp.title_hint,
                                     failure=NnioApp.open_failure)
        yield LoadingView(id="loading")
        yield TooSmall(id="too-small")
        with Vertical(id="main"):
            yield TokenChunks(id="tokens").data_bind(
                NnioApp.corpus, NnioApp.window_start, NnioApp.context, NnioApp.show_ids
            )
            with Horizontal(id="lower"):
                with Vertical(id="left"):
                    yield ContextWindow(id="context").data_bind(
                        NnioApp.window_chunks, NnioApp.block_size, NnioApp.nudge, NnioApp.sampled,
                        NnioApp.held_out
                    )
                    yield LossChart(id="loss").data_bind(NnioApp.training, NnioApp.running,
                                                          NnioApp.stepping)
                yield NextTokenBars(id="bars").data_bind(
                    NnioApp.probe, NnioApp.before, NnioApp.sampled, stale=NnioApp.probe_stale,
                    since=NnioApp.before_since
                )
        yield Footer()

    @property
    def _home(self) -> Screen:
        return self.screen_stack[0]

    def on_mount(self) -> None:
        self.query_one("#tokens").border_title = "tokens"
        theme = saved_theme()
        if theme in self.available_themes:  # one the user made may not be there any more
            self.theme = theme
        self.theme_changed_signal.subscribe(self, lambda picked: save_theme(picked.name))
        self._home.add_class("-loading")
        # Few or no colours: token chunks alternate underline too, so they stay apart.
        low = self._low_colour
        if low is None:
            few = self.console.color_system in (None, "standard", "windows")
            low = self.no_color or (few and not self.is_headless)
        self._home.set_class(low, "-low-colour")
        self._watch_signals(asyncio.get_running_loop())
        self._check_size(self.size.width, self.size.height)
        self._ensure_worker()

    def get_driver_class(self) -> type[Driver]:
        return hang_up_safe(super().get_driver_class())

    @property
    def terminal_gone(self) -> bool:
        """True once output failed because the terminal closed (nothing more can be shown)."""
        return HangUpSafeWriter.terminal_gone

    # -- signals -------------------------------------------------------------
    QUIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")

    def _watch_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGTERM, a dropped SSH link (SIGHUP) or Ctrl+C from outside quit like q: save, exit."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set signal handlers
        for name in self.QUIT_SIGNALS:
            loop.add_signal_handler(getattr(signal, name), self.call_later, self._begin_quit)
        self._signal_loop = loop

    def on_unmount(self) -> None:
        if self._signal_loop is not None:
            for name in self.QUIT_SIGNALS:
                self._signal_loop.remove_signal_handler(getattr(signal, name))
            self._signal_loop = None

    # -- the worker ----------------------------------------------------------
    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def _run_training(self) -> None:
        worker = get_current_worker()
        self.bridge.serve(lambda: worker.is_cancelled)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.is_finished:
            self._worker = self._run_training()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "training" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        line = f"{type(error).__name__}: {error}".splitlines()[0]
        self.bridge.pause()
        self.running = False
        if self._quitting:
            self.exit(1, return_code=1, message=Text(f"nnio-tui: error: training failed: {line}"))
        elif self.corpus is None:
            self._show_failure(line)
        else:
            self.notify(line, title="training stopped", severity="error", markup=False)

    # -- facts from the worker -----------------------------------------------
    def on_session_loading(self, message: messages.SessionLoading) -> None:
        self.query_one(LoadingView).show_progress(message.what, message.fraction)

    def on_session_opened(self, message: messages.SessionOpened) -> None:
        self.info = message.info
        self.step = message.info.step
        self.block_size = message.info.block_size
        self.corpus = message.corpus
        self._set_window(message.start, message.length, probe=False)
        self._home.remove_class("-loading")
        self.refresh_bindings()  # the session's keys are back in the footer
        # What exists once the screen is up lives as long as the app: frozen, it is out of
        # the collector's way. A full collection walked it in 33 ms on 2 busy cores, a
        # hitch in the keys (bench/app_overhead.py, 200 presses: key to window max 67.8 ms
        # without this, 40.6 with it; key to new probe p95 86.0 and 65.7 ms).
        self.call_after_refresh(gc.freeze)

    def on_session_failed(self, message: messages.SessionFailed) -> None:
        self._show_failure(message.error)

    def _show_failure(self, line: str) -> None:
        self.open_failure = line
        self.query_one(LoadingView).show_error(line)
        self.refresh_bindings()  # the footer keeps only the keys that still work

    def on_session_reset(self, message: messages.SessionReset) -> None:
        self.info = message.info
        self.nudge = self.sampled = None
        self._nudged_since_reset = False
        self.notify("fresh random weights: step 0")

    def on_session_closed(self, message: messages.SessionClosed) -> None:
        self.saved_path = message.saved_path
        if message.error is not None:
            line = f"nnio-tui: error: could not save the checkpoint: {message.error}"
            self.exit(2, return_code=2, message=Text(line))
        elif message.defect is not None:  # the save ran, but the run still failed
            line = f"nnio-tui: error: training failed: {message.defect}"
            self.exit(1, return_code=1, message=Text(line))
        else:
            self.exit(0)

    def on_step_began(self) -> None:
        self.stepping = True

    def on_training_progress(self, message: messages.TrainingProgress) -> None:
        self.training = message.snapshot
        if message.snapshot.step != self._lines_step:
            # a nudge or sample made while training ran: the weights have moved on since
            self.nudge = self.sampled = None
        self.step = message.snapshot.step
        self.stepping = False

    def on_training_started(self) -> None:
        self.running = True
        # what a nudge or a sample found holds for the weights they saw, not for those to come
        self.nudge = self.sampled = None
        self._lines_step = self.step

    def on_training_stopped(self) -> None:
        self.running = False

    def watch_running(self, running: bool) -> None:
        self._home.set_class(running, "-training")

    def _is_current(self, start: int, length: int) -> bool:
        return (start, length) == (self.window_start, self.context)

    def on_probe_ready(self, message: messages.ProbeReady) -> None:
        # A probe for an older window is stale: a newer one is already on its way.
        if self._is_current(message.start, message.length):
            self.probe, self.before = message.probe, message.before
            self.before_since = message.since
            self.probe_stale = False

    def on_window_chosen(self, message: messages.WindowChosen) -> None:
        # A key that moved the window while this was on its way wins, as it does in the worker.
        if not self.bridge.window_sent_after(message.number):
            self._set_window(message.start, message.length, probe=False)

    def on_nudged(self, message: messages.Nudged) -> None:
        self._nudged_since_reset = True
        if self._is_current(message.start, message.length):
            self.nudge = message.report
            self.sampled = None  # drawn from the weights before the nudge
            # the report's own step: while training runs, self.step lags the worker's
            self._lines_step = message.report.step

    def on_token_sampled(self, message: messages.TokenSampled) -> None:
        if self._is_current(message.start, message.length):
            self.sampled = message.sampled
            self._lines_step = self.step
            token = message.sampled.token
            # token texts and paths hold brackets ("[/" is a token): never markup
            self.notify(f"sampled {token.text} ({pct(token.prob)})", timeout=3, markup=False)

    def on_checkpoint_saved(self, message: messages.CheckpointSaved) -> None:
        self.notify(f"saved checkpoint to {message.path}", markup=False)

    def on_command_failed(self, message: messages.CommandFailed) -> None:
        self.stepping = False
        self.notify(message.error, title=message.title, severity="error", markup=False)

    @on(TokenChunks.TokenClicked)
    def make_label(self, message: TokenChunks.TokenClicked) -> None:
        """The clicked token becomes the label; the window is the tokens before it."""
        if not self._can_act() or message.index < 1:
            self.bell()
            return
        length = min(self.context, message.index)
        self._set_window(message.index - length, length)

    # -- the window ----------------------------------------------------------
    def _set_window(self, start: int, length: int, probe: bool = True) -> None:
        assert self.corpus is not None
        length = max(1, min(length, self.block_size, self.corpus.n_tokens - 1))
        start = max(0, min(start, self.corpus.n_tokens - length - 1))
        if probe and self._is_current(start, length):
            # At an end of the corpus, or the label clicked again: nothing moves, and the
            # bars keep their before-and-after
            self.bell()
            return
        if not self._is_current(start, length):
            self.nudge = self.sampled = None
            self.probe_stale = True
        self.window_start, self.context = start, length
        self.window_chunks = tuple(self.corpus.chunks(start, start + length + 1))
        split = self.info.train_tokens if self.info is not None else None
        self.held_out = split is not None and start + length >= split
        if probe:
            self.bridge.send(Look(start, length))
            self._ensure_worker()

    def _can_act(self) -> bool:
        return self.corpus is not None and not self._quitting

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that would change what cannot be seen (the screen too small, or no session
        open) do nothing, and the footer leaves them out."""
        if action not in _SESSION_ACTIONS:
            return True
        return self._can_act() and not self._home.has_class("-too-small")

    def _send(self, command: Step | Nudge | NewWindow | Sample | Save | Reset) -> None:
        if not self._can_act():
            self.bell()
            return
        self.bridge.send(command)
        self._ensure_worker()

    # -- keys ----------------------------------------------------------------
    def action_toggle_run(self) -> None:
        """Run or pause continuous training."""
        if not self._can_act():
            self.bell()
        elif self.bridge.running:
            self.bridge.pause()
        else:
            self.bridge.resume()
            self._ensure_worker()

    def action_step(self) -> None:
        """One batch update."""
        self._send(Step())

    def action_nudge(self) -> None:
        """One update on the current window only, never on text held out for validation."""
        if self._can_act():  # else _send rings the bell
            if self.held_out:
                self.bell()
                self.notify("this window's label is held out for validation, which training"
                            " never sees: slide left or press n for another window",
                            markup=False)
                return
            if self.bridge.running:
                # The next step would move the weights at once and clear the before→after.
                self.bridge.pause()
                self.notify("training paused to show the nudge: space runs on", timeout=4)
        self._send(Nudge(self.window_start, self.context))

    def action_new_window(self) -> None:
        """Ask the worker for a random window."""
        self._send(NewWindow(self.context))

    def action_slide(self, delta: int) -> None:
        """Move the window by delta tokens."""
        if self._can_act():
            self._set_window(self.window_start + delta, self.context)

    def action_resize_context(self, delta: int) -> None:
        """Make the context shorter or longer, keeping the label where it is if it can."""
        if not self._can_act():
            return
        length = max(1, min(self.context + delta, self.block_size))
        if length == self.context:
            self.bell()
            return
        label = self.window_start + self.context
        # At the corpus start a longer context pushes the label right instead.
        self._set_window(max(0, label - length), length)

    def action_toggle_ids(self) -> None:
        """Show or hide token ids under the chunks."""
        self.show_ids = not self.show_ids

    def action_scroll_tokens(self, pages: int) -> None:
        """Page through the corpus with the keyboard (mouse wheels are not there over SSH)."""
        self.query_one(TokenChunks).scroll_pages(pages)

    def action_sample(self) -> None:
        """Draw a next token from the model."""
        self._send(Sample(self.window_start, self.context))

    def action_save(self) -> None:
        """Write a checkpoint."""
        self._send(Save())

    def action_reset(self) -> None:
        """Ask, then reset to random weights."""
        if not self._can_act():
            self.bell()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._send(Reset())

        # random weights as a reset makes (step 0, no nudge since): no training to lose
        updated = self.step > 0 or self._nudged_since_reset
        unsaved = self.training is not None and self.training.dirty and updated
        self.push_screen(ConfirmReset(self._kept_before_reset(), unsaved=unsaved), answered)

    @property
    def _checkpoint_path(self) -> str | None:
        return self.info.checkpoint_path if self.info is not None else None

    def _kept_before_reset(self) -> str | None:
        """The name the run's saved checkpoint will move to, if it has one on disk."""
        path = self._checkpoint_path
        if path is None or not holds_training(Path(path)):
            return None
        try:
            return before_reset_path(Path(path)).name
        except CheckpointError:  # every name taken: the save after the reset will say so
            return None

    def action_help(self) -> None:
        """Show every key."""
        self.push_screen(HelpScreen(help_rows()))

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save an SVG of the screen to Downloads, or where there is none (most servers
        reached over SSH), to the current folder; Textual's default fails there."""
        if path is None:
            from platformdirs import user_downloads_path

            downloads = user_downloads_path()
            path = str(downloads if downloads.is_dir() else Path.cwd())
        return super().deliver_screenshot(filename, path, time_format)

    async def action_quit(self) -> None:
        """Stop after the current step, save if dirty, then exit; pressed twice more, exit now.

        Only keys count towards quitting now: a signal (SIGTERM, a dropped SSH link) always
        waits for the save.
        """
        if not self._quitting:
            self._begin_quit()
            return
        self._quit_presses += 1
        if self._quit_presses == 1:
            self.notify(f"still stopping: the run is saved when the current step ends. Press q"
                        f" again to quit now ({self._what_quitting_now_keeps()}).",
                        timeout=15, markup=False)
        else:
            self._quit_now()

    def _what_quitting_now_keeps(self) -> str:
        if self.bridge.saves_if_abandoned:
            where = f" to {self._checkpoint_path}" if self._checkpoint_path else ""
            return f"the training process still saves the run{where} when its step ends"
        return "training since the last save is lost"

    def _quit_now(self) -> None:
        """Leave at once, without waiting for the step: the worker thread cannot be stopped
        mid-step, and the interpreter would wait for it at exit."""
        driver = self._driver
        if driver is not None:
            driver.stop_application_mode()  # the terminal back as it was
            driver.close()  # waits for the writer thread to send it
        if not self.terminal_gone and sys.__stderr__ is not None:
            # sys.stderr is Textual's capture while the app runs
            print(f"nnio-tui: quit without waiting for the step: {self._what_quitting_now_keeps()}",
                  file=sys.__stderr__, flush=True)
        _exit_now(130)

    def _begin_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self.refresh_bindings()  # the footer and palette drop the keys that now do nothing
        self.bridge.request_quit()
        if self.corpus is None:
            # Nothing was opened, so nothing to save; a factory still running ends on its own.
            if self.open_failure is None:
                self.exit(0, return_code=0)
            else:  # said again where it stays readable once the screen is gone
                self.exit(2, return_code=2, message=Text(f"nnio-tui: error: {self.open_failure}"))
            return
        self.notify("stopping…", timeout=10)
        self._home.query_one(LossChart).stopping = True
        self._ensure_worker()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own Quit (ours saves first) and Keys (a side panel that squeezes the
        # layout; ? shows every key) would be twins of the keys below
        yield from (command for command in super().get_system_commands(screen)
                    if command.title not in ("Quit", "Keys"))
        for _, shown, action, label, text, _ in KEYS:
            name, _, arg = action.partition("(")
            if not self.check_action(name, ()):
                continue  # no session open (or quitting, or too small): the key does nothing
            method = getattr(self, f"action_{name}")
            callback = partial(method, int(arg.rstrip(")"))) if arg else method
            yield SystemCommand(f"{label} ({shown})", text, callback)

    # -- size ----------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        too_small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        if too_small != self._home.has_class("-too-small"):
            self.refresh_bindings()
        self._home.set_class(too_small, "-too-small")
        self.query_one(TooSmall).have = (width, height)
