"""HelpScreen: every key the app knows, and what the picture shows."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

ABOUT = (
    "Tokens go in; one probability per token of the vocabulary comes out. Training nudges up "
    "the label's, the token that really came next."
)


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        """Args:
        keys: (key as shown, what it does) pairs.
        """
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self._keys:
            table.add_row(Text(key), Text(description))
        # fits the app's least size (80x24); scrolls should it ever be taller than the screen
        with VerticalScroll(id="help-box"):
            yield Static(Text(ABOUT), id="help-about")
            yield Static(table, id="help-keys")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "keys"
        box.border_subtitle = "escape closes this"  # on the border: seen even when scrolled
