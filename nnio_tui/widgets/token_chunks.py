"""TokenChunks: the corpus as coloured token chunks, with the current window outlined."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from model.api import Chunk
from nnio_tui.corpus_view import CorpusView
from nnio_tui.widgets.border_text import set_border_subtitle
from nnio_tui.widgets.style_cache import StyleCache

PAGE = 256
MAX_PAGES = 64


def style_name(index: int, start: int, label: int) -> str:
    """The component class of the chunk at `index`, for a window [start, label) and its label."""
    parity = "odd" if index % 2 else "even"
    if index == label:
        return "token-chunks--label"
    if start <= index < label:
        return f"token-chunks--window-{parity}"
    return f"token-chunks--{parity}"


class Cell(NamedTuple):
    """One chunk placed on a line: its corpus index, chunk, column and width."""

    index: int
    chunk: Chunk
    x: int
    width: int


class TokenChunks(StyleCache, Widget):
    """Shows only the visible part of the corpus, read page by page from a CorpusView.

    Lines are laid out from `top`, the index of the first visible token, so a corpus of any
    size costs the same; the window and its label are kept in view as they move. Each line
    is drawn on its own (Textual's line API), and a slide redraws only the lines whose
    chunks or colours changed, usually two or three of ten: redrawing the whole view cost a
    key 10-12 ms of UI work on a Zen 3, the changed lines ~1.5 ms (bench/README.md, note 4).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "token-chunks--even",
        "token-chunks--odd",
        "token-chunks--window-even",
        "token-chunks--window-odd",
        "token-chunks--label",
        "token-chunks--bytes",
        "token-chunks--id",
    }

    DEFAULT_CSS = """
    TokenChunks {
        text-wrap: nowrap;
        text-overflow: ellipsis;
        height: 1fr;
        min-height: 3;
    }
    """

    # repaint=False: _relayout decides which lines to redraw
    corpus: reactive[CorpusView | None] = reactive(None, repaint=False)
    window_start = reactive(0, repaint=False)
    context = reactive(1, repaint=False)
    show_ids = reactive(False, repaint=False)

    @dataclass
    class TokenClicked(Message):
        """A token was clicked: it should become the label."""

        index: int

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.top = 0
        # tops that pages down left, with the layout they were left in, so a page up undoes
        # one exactly: lines packed backwards can break elsewhere than lines packed forwards
        self._paged_from: list[tuple[int, int, bool, int]] = []
        self._lines: list[list[Cell]] = []
        # what each drawn line showed, and the geometry it was drawn for
        self._drawn: list[tuple] = []
        self._drawn_for: tuple[int, Size, bool] | None = None
        self._pages: OrderedDict[int, list[Chunk]] = OrderedDict()

    # -- data ----------------------------------------------------------------
    def _chunk(self, index: int) -> Chunk:
        page = index // PAGE
        chunks = self._pages.get(page)
        if chunks is None:
            assert self.corpus is not None
            chunks = self.corpus.chunks(page * PAGE, page * PAGE + PAGE)
            self._pages[page] = chunks
            if len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page)
        return chunks[index - page * PAGE]

    def _cell_width(self, chunk: Chunk, show_ids: bool) -> int:
        width = cell_len(chunk.text)
        return max(width, len(str(chunk.token_id))) + 1 if show_ids else width

    # -- layout --------------------------------------------------------------
    @property
    def _rows_per_line(self) -> int:
        return 2 if self.show_ids else 1

    def _layout(self, top: int) -> list[list[Cell]]:
        width = max(1, self.size.width)
        n_lines = max(1, self.size.height // self._rows_per_line)
        n = self.corpus.n_tokens if self.corpus else 0
        show_ids = self.show_ids  # a reactive: read once, not once per chunk
        lines: list[list[Cell]] = []
        index = top
        while len(lines) < n_lines and index < n:
            line: list[Cell] = []
            x = 0
            while index < n:
                chunk = self._chunk(index)
                w = self._cell_width(chunk, show_ids)
                if line and x + w > width:
                    break
                line.append(Cell(index, chunk, x, min(w, width)))
                x += w
                index += 1
                if chunk.text.endswith("⏎"):
                    break
            lines.append(line)
        return lines

    def _line_start_before(self, index: int, lines: int = 1) -> int:
        """Walk back `lines` lines from index, packing greedily as layout would."""
        width = max(1, self.size.width)
        show_ids = self.show_ids
        start = index
        for _ in range(lines):
            x = 0
            while start > 0:
                chunk = self._chunk(start - 1)
                w = self._cell_width(chunk, show_ids)
                if chunk.text.endswith("⏎") and x > 0 or x + w > width:
                    break
                x += w
                start -= 1
            if start == 0:
                break
        return start

    def _last_visible(self, lines: list[list[Cell]]) -> int:
        return lines[-1][-1].index if lines and lines[-1] else -1

    def _relayout(self, follow: bool) -> None:
        if self.corpus is None or not self.size:
            self._lines = []
            self._redraw()
            return
        lines = self._layout(self.top)
        label = self.window_start + self.context
        if follow and (self.window_start < self.top or label > self._last_visible(lines)):
            # Put the window a line below the top, or if it is too long, the label near the end.
            self.top = self._line_start_before(self.window_start, 1)
            lines = self._layout(self.top)
            if label > self._last_visible(lines):
                self.top = self._line_start_before(label, max(1, len(lines) - 1))
                lines = self._layout(self.top)
            while label > self._last_visible(lines) and self.top < label:
                self.top += 1
                lines = self._layout(self.top)
        self._lines = lines
        if lines and lines[-1]:
            last = self._last_visible(lines)
            set_border_subtitle(self, f"{self.top:,}-{last:,} of {self.corpus.n_tokens:,}")
        self._redraw()

    def _redraw(self) -> None:
        """Refresh the lines that now show other chunks or colours, or all of them."""
        start, label = self.window_start, self.window_start + self.context
        drawn = [tuple((cell, style_name(cell.index, start, label)) for cell in line)
                 for line in self._lines]
        geometry = (self.top, self.size, self.show_ids)
        if geometry != self._drawn_for or len(drawn) != len(self._drawn):
            self.refresh()
        else:
            rows = self._rows_per_line
            changed = [Region(0, n * rows, self.size.width, rows)
                       for n, (new, old) in enumerate(zip(drawn, self._drawn)) if new != old]
            if changed:  # refresh() with no region would redraw every line
                self.refresh(*changed)
        self._drawn, self._drawn_for = drawn, geometry

    # -- reactives and events ------------------------------------------------
    def watch_corpus(self) -> None:
        self._pages.clear()
        self.top = 0
        self._drawn_for = None  # another corpus: every line is new
        self._relayout(follow=True)

    def watch_window_start(self) -> None:
        self._relayout(follow=True)

    def watch_context(self) -> None:
        self._relayout(follow=True)

    def watch_show_ids(self) -> None:
        self._relayout(follow=True)

    def on_resize(self) -> None:
        self._relayout(follow=True)

    def scroll_lines(self, delta: int) -> None:
        """Move the view by whole lines (the window may leave the view)."""
        if not self._lines:
            return
        if delta > 0 and len(self._lines) > 1:
            # no further than the page that ends with the corpus, as pagers stop
            n_lines = max(1, self.size.height // self._rows_per_line)
            last_page = self._line_start_before(self.corpus.n_tokens, n_lines)
            moved = self._lines[min(delta, len(self._lines) - 1)][0].index
            self.top = max(self.top, min(moved, last_page))
        elif delta < 0:
            self.top = self._line_start_before(self.top, -delta)
        self._relayout(follow=False)

    def scroll_pages(self, pages: int) -> None:
        """Move the view by whole screens, keeping one line of the last in sight; a line
        takes two rows while ids show, so a page is counted in lines, not rows."""
        per_page = max(1, self.content_size.height // self._rows_per_line - 1)
        layout = (self.size.width, self.show_ids)
        for _ in range(abs(pages)):
            back = self._paged_from[-1] if self._paged_from else None
            if pages < 0 and back is not None and back[1:] == (self.top, *layout):
                self._paged_from.pop()
                self.top = back[0]
                self._relayout(follow=False)
                continue
            if back is not None and back[1:] != (self.top, *layout):
                self._paged_from.clear()  # the view moved some other way since
            before = self.top
            self.scroll_lines(per_page if pages > 0 else -per_page)
            if pages > 0 and self.top != before:
                self._paged_from = [*self._paged_from[-999:], (before, self.top, *layout)]

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_lines(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_lines(-1)

    def index_at(self, x: int, y: int) -> int | None:
        """The corpus index of the token drawn at content offset (x, y), if any."""
        line = y // self._rows_per_line
        if line >= len(self._lines):
            return None
        for cell in self._lines[line]:
            if cell.x <= x < cell.x + cell.width:
                return cell.index
        return None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self.index_at(offset.x, offset.y)
        if index is not None:
            self.post_message(self.TokenClicked(index))

    # -- drawing -------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        """One row of the content: a line of chunks, or (with ids shown) the ids under it."""
        width, base = self.size.width, self.cached_style()
        blank = Style(bgcolor=base.bgcolor)  # past the text: the background alone
        n, id_row = divmod(y, self._rows_per_line)
        if n >= len(self._lines):
            return Strip.blank(width, blank)
        style = self.cached_style
        segments = []
        if id_row:
            id_style = base + style("token-chunks--id")
            for cell in self._lines[n]:
                label = str(cell.chunk.token_id)
                segments.append(Segment(label[: width - cell.x].ljust(cell.width), id_style))
        else:
            bytes_style = style("token-chunks--bytes", partial=True)
            start, label = self.window_start, self.window_start + self.context
            combined: dict[str, Style] = {}
            for cell in self._lines[n]:
                name = style_name(cell.index, start, label)
                cell_style = combined.get(name)
                if cell_style is None:
                    cell_style = combined[name] = base + style(name)
                if cell.chunk.is_partial_bytes:
                    cell_style = cell_style + bytes_style
                chunk_text = cell.chunk.text[: cell.width]
                segments.append(Segment(chunk_text, cell_style))
                if self.show_ids and cell.width > cell_len(chunk_text):
                    segments.append(Segment(" " * (cell.width - cell_len(chunk_text)), base))
        return Strip(segments).crop_extend(0, width, blank)
