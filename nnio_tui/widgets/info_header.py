"""InfoHeader: one line of facts about the run: corpus, tokenizer, model, device, step."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from model.api import SessionInfo


def _count(n: int) -> str:
    """A parameter count as 13.6M or 850K."""
    return f"{n / 1e6:.1f}M" if n >= 1_000_000 else f"{n / 1e3:.0f}K"


class InfoHeader(Widget):
    """Facts from SessionInfo plus the live step; drops the least useful facts when narrow."""

    DEFAULT_CSS = """
    InfoHeader {
        text-wrap: nowrap;
        text-overflow: ellipsis;
        height: 1;
        dock: top;
    }
    """

    info: reactive[SessionInfo | None] = reactive(None)
    step = reactive(0)
    title_hint = reactive("")
    failure: reactive[str | None] = reactive(None)  # why the session did not open

    def render(self) -> Text:
        info = self.info
        if info is None:
            state = "loading…" if self.failure is None else "not opened"
            return Text.assemble((" nnio-tui ", "bold"), f" {self.title_hint}  {state}")
        # (text, priority): the lowest priority goes first when the line is too long. The
        # tokenizer goes before the device: the bars' title already gives the vocab size,
        # and nothing else on screen says where training runs or in what precision.
        parts = [
            (" nnio-tui ", 1),
            (f"{info.corpus_name} {info.n_tokens:,} tokens", 5),
            (f"{info.encoding} ({info.vocab_size:,})", 2),
            (f"{info.preset} {_count(info.n_params)} params", 3),
            (f"{info.device} {info.precision}", 4),
            (f"step {self.step:,}", 6),
        ]
        while sum(cell_len(p) + 2 for p, _ in parts) > self.size.width and len(parts) > 1:
            parts.remove(min(parts, key=lambda part: part[1]))
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, (part, _) in enumerate(parts):
            text.append(part, "bold" if n == 0 and part == " nnio-tui " else "")
            text.append("  ")
        return text
