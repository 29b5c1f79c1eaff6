"""LossChart: training and validation loss over steps, with the numbers that go with them."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from nnio_tui.messages import TrainingSnapshot
from nnio_tui.widgets.border_text import set_border_subtitle


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _NumbersLine(Widget):
    """One line of text that repaints in place.

    A Label's update() asks for a new layout of the whole screen, in case its size changed;
    this line's size is fixed by CSS, so a new snapshot costs a repaint of one row only
    (bench/app_overhead.py: fewer UI cycles taken from training).
    """

    DEFAULT_CSS = """
    _NumbersLine {
        height: 1;
        width: 1fr;
    }
    """

    text: reactive[Text] = reactive(Text)

    def render(self) -> Text:
        return self.text


class LossChart(Widget):
    """Two sparklines (train, val) under a line of numbers: step, losses, speed, lr, state."""

    DEFAULT_CSS = """
    LossChart {
        height: auto;
        layout: vertical;
    }
    LossChart .loss-chart--name {
        width: 6;
    }
    """

    # The numbers and sparklines redraw themselves; repainting the chart too (and setting
    # its subtitle when it had not changed) drew the whole panel anew every step: 1.5 ms of
    # a step's frame on a Zen 3 (bench/README.md, note 6).
    training: reactive[TrainingSnapshot | None] = reactive(None, repaint=False)
    # the app's, which turns on when the worker starts the run, before its first step ends
    running: reactive[bool] = reactive(False, repaint=False)
    # set once q was pressed: a run still stepping is stopping, not running on
    stopping: reactive[bool] = reactive(False, repaint=False)
    # the app's, while one step (the s key) is under way
    stepping: reactive[bool] = reactive(False, repaint=False)

    def compose(self) -> ComposeResult:
        yield _NumbersLine(id="loss-numbers")
        yield _NumbersLine(id="loss-state")
        with Horizontal(id="train-row"):
            yield Label("train", classes="loss-chart--name")
            yield Sparkline([], id="train-loss")
        with Horizontal(id="val-row"):
            yield Label("val", classes="loss-chart--name")
            yield Sparkline([], id="val-loss")

    def on_mount(self) -> None:
        self.border_title = "loss"
        self.watch_training(self.training)

    def watch_training(self, snapshot: TrainingSnapshot | None) -> None:
        if snapshot is None or not self.is_mounted:
            return
        self.query_one("#loss-numbers", _NumbersLine).text = Text.assemble(
            ("step ", "dim"), f"{snapshot.step:,}",
            ("  train ", "dim"), _fmt(snapshot.loss, ".3f"),
            ("  val ", "dim"), _fmt(snapshot.val_loss, ".3f"),
        )
        self.query_one("#loss-state", _NumbersLine).text = Text.assemble(
            _fmt(snapshot.tokens_per_s, ",.0f"), (" tok/s", "dim"),
            ("  lr ", "dim"), _fmt(snapshot.lr, ".1e"),
        )
        self._show_state(snapshot)
        for name, values in (("#train-loss", snapshot.losses), ("#val-loss", snapshot.val_losses)):
            sparkline = self.query_one(name, Sparkline)
            sparkline.data = _curve(values)
            # with no data, Sparkline draws a flat line of lows, which reads as a low loss
            sparkline.visible = bool(sparkline.data)

    def watch_running(self) -> None:
        if self.training is not None and self.is_mounted:
            self._show_state(self.training)

    watch_stopping = watch_stepping = watch_running

    def _show_state(self, snapshot: TrainingSnapshot) -> None:
        if self.stopping and (self.running or self.stepping):
            state = "stopping ■"
        elif self.running:
            state = "running ▶"
        else:
            state = "stepping…" if self.stepping else "paused ⏸"
        set_border_subtitle(self, f"unsaved · {state}" if snapshot.dirty else state)


def _curve(values: tuple[float, ...]) -> tuple[float, ...]:
    """A sparkline's data: none until there are two points to join.

    Given one value, Sparkline fills its whole box, which reads as a high flat loss; with
    none it draws a baseline of lows, so the chart hides it then.
    """
    return values if len(values) >= 2 else ()
