"""ConfirmReset: a yes/no question before throwing the trained weights away."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class ConfirmReset(ModalScreen[bool]):
    """Dismisses with True to reset the weights, False to keep them."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "answer(True)", "Reset"),
        Binding("n,escape", "answer(False)", "Keep", key_display="n/esc"),
    ]

    def __init__(self, kept_as: str | None = None, *, unsaved: bool = True) -> None:
        """kept_as: the file name the saved run moves to at the next save, if there is one;
        unsaved: whether training since the last save would be lost."""
        super().__init__()
        self._kept_as = kept_as
        self._unsaved = unsaved

    def compose(self) -> ComposeResult:
        question = "Reset to fresh random weights? Step goes back to 0"
        question += " and unsaved training is lost." if self._unsaved else "."
        if self._kept_as is not None:
            question += f" The saved checkpoint is kept as {self._kept_as}."
        with Vertical(id="confirm-box"):
            yield Static(Text(question))
            with Horizontal(id="confirm-buttons"):
                yield Button("Reset (y)", variant="error", id="yes")
                yield Button("Keep (n)", variant="primary", id="no")
        yield Footer()  # covers the app's, whose keys do nothing while this is open

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
