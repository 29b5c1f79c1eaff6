"""SegmentRows: a widget drawn line by line (Textual's line API) from rows it builds once."""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from nnio_tui.widgets.style_cache import StyleCache

Row = list[tuple[str, Style | None]]
"""A row as (text, style) pieces; a style of None is the widget's own."""


class SegmentRows(StyleCache):
    """Mix into a Widget that draws its rows from (text, style) pieces.

    The rows are built when what they show (`_rows_key`) or the CSS changes, not once per
    line drawn, with styles from StyleCache (`Widget.rich_style` walks every ancestor).
    Drawn as a Text instead, the next-token bars and the context panel spent most of their
    frame turning it into Textual's Content (bench/README.md, note 5).
    """

    FILL_WITH_BASE = False
    """Rows under the last one: the full base style (as Textual fills under a Text that
    ends early) or the background alone."""

    _built: Sequence[Row] = ()
    _built_for: tuple | None = None

    def _rows_key(self) -> tuple:
        """What the rows show; they are built again when it changes."""
        raise NotImplementedError

    def _build_lines(self) -> list[Row]:
        raise NotImplementedError

    def _fit(self, row: Row, width: int) -> Row:
        """The row as drawn at this width (the strip crops what is longer)."""
        return row

    def notify_style_update(self) -> None:
        self._built_for = None  # the colours come from CSS (a theme, a class): build anew
        super().notify_style_update()  # type: ignore[misc]

    def render_line(self, y: int) -> Strip:
        key = self._rows_key()
        if self._built_for != key:
            self._built = self._build_lines()
            self._built_for = key
        width, base = self.size.width, self.cached_style()  # type: ignore[attr-defined]
        blank = Style(bgcolor=base.bgcolor)  # past the text: the background alone
        if y >= len(self._built):
            return Strip.blank(width, base if self.FILL_WITH_BASE else blank)
        segments = [Segment(text, base + style if style else base)
                    for text, style in self._fit(self._built[y], width)]
        return Strip(segments).crop_extend(0, width, blank)
