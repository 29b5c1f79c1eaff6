"""TooSmall: shown instead of the panels when the terminal is smaller than they need."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class TooSmall(Widget):
    """Asks for a bigger terminal, saying how big it is and how big it needs to be."""

    DEFAULT_CSS = """
    TooSmall {
        height: 1fr;
        content-align: center middle;
    }
    """

    need = reactive((80, 24))
    have = reactive((0, 0))

    def render(self) -> Text:
        (need_w, need_h), (have_w, have_h) = self.need, self.have
        return Text(
            f"make the window bigger\n(need {need_w}x{need_h}, have {have_w}x{have_h})\n\nq quits",
            justify="center",
        )
