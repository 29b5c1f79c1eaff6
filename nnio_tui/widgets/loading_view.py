"""LoadingView: what shows while the session opens, or why it could not."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar


class LoadingView(Vertical):
    """A progress bar fed by the session's on_progress, and a one-line error if opening fails."""

    DEFAULT_CSS = """
    LoadingView {
        align: center middle;
        height: 1fr;
    }
    LoadingView > * {
        width: auto;
        max-width: 100%;  /* a long error wraps instead of running off the screen */
        padding: 0 2;
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("starting…", id="loading-what")
        yield ProgressBar(total=1.0, show_eta=False, id="loading-bar")
        yield Label(id="loading-error")

    def show_progress(self, what: str, fraction: float) -> None:
        """Show the latest step of opening the session."""
        self.query_one("#loading-what", Label).update(Text(what))
        self.query_one(ProgressBar).update(progress=max(0.0, min(1.0, fraction)))

    def show_error(self, error: str) -> None:
        """Replace the progress with why opening failed."""
        self.query_one("#loading-what", Label).update(Text("could not open the session"))
        self.query_one(ProgressBar).display = False
        self.query_one("#loading-error", Label).update(
            Text.assemble((error, "bold"), "\npress q to quit")
        )
