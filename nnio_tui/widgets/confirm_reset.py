"""ConfirmReset: a yes/no question before throwing the trained weights away."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmReset(ModalScreen[bool]):
    """Dismisses with True to reset the weights, False to keep them."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "answer(True)", "Reset"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(
                Text("Reset to fresh random weights? Step goes back to 0 and unsaved training is lost.")
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Reset (y)", variant="error", id="yes")
                yield Button("Keep (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
