"""NextTokenBars: the network's output, top tokens as bars, with where each bar was before."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from model.api import Probe, Sampled, TokenProb
from nnio_tui.percent import pct, pct_change
from nnio_tui.widgets.border_text import set_border_subtitle, set_border_title
from nnio_tui.widgets.segment_rows import Row, SegmentRows

EIGHTHS = " ▏▎▍▌▋▊▉"
TEXT_WIDTH = 12
MIN_TEXT_WIDTH = 4  # cells of token text kept however narrow the panel
MIN_BAR_WIDTH = 4


def bar(cells: float) -> str:
    """A horizontal bar `cells` wide, in eighths of a cell."""
    full, rest = divmod(max(0.0, cells), 1)
    return "█" * int(full) + (EIGHTHS[int(rest * 8)] if int(rest * 8) else "")


class NextTokenBars(SegmentRows, Widget):
    """Top-k next tokens as bars scaled to the width; as many rows as fit the height.

    The label's row is always shown (with its rank when it is outside the top rows). When
    `before` is set, each bar shows its old probability: growth in one colour, loss as a ghost.
    Drawn from segments (SegmentRows): as a Text, the bars took 9 ms of each new probe's frame
    on a Zen 3; so, 5 ms (bench/README.md, note 5).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "next-token-bars--bar",
        "next-token-bars--gain",
        "next-token-bars--ghost",
        "next-token-bars--label",
        "next-token-bars--sampled",
        "next-token-bars--dim",
    }

    DEFAULT_CSS = """
    NextTokenBars {
        text-wrap: nowrap;
        text-overflow: ellipsis;
        height: 1fr;
    }
    """

    probe: reactive[Probe | None] = reactive(None)
    before: reactive[Probe | None] = reactive(None)
    sampled: reactive[Sampled | None] = reactive(None)
    since: reactive[str | None] = reactive(None, repaint=False)
    """What `before` was taken before ("the nudge"), said under the bars."""
    stale = reactive(False, repaint=False)
    """The window moved and its probe is on its way. It draws nothing (the `-stale` class
    dims), so it does not repaint: when it did, every key redrew these bars ahead of the
    slid window in the same frame, 7-20 ms of a key's 24 on a Zen 3 while training
    (bench/README.md, note 5)."""

    DIM_AFTER_S = 0.3
    """How long old bars stay bright after the window moved. The new probe is usually on
    screen sooner (p95 95 ms while training on a Zen 3), and dimming at once made every
    key restyle and redraw these bars twice, in the same frame as the slid window: 17 of
    the ~35 ms of UI work a key cost there (bench/README.md, note 4)."""

    _dim_timer: Timer | None = None

    def watch_stale(self, stale: bool) -> None:
        # The window moved and its probe is on its way: dim the old bars if it is slow.
        if self._dim_timer is not None:
            self._dim_timer.stop()
            self._dim_timer = None
        if stale:
            self._dim_timer = self.set_timer(self.DIM_AFTER_S, partial(self.add_class, "-stale"))
        else:
            self.remove_class("-stale")  # no restyle when the class was never added

    def watch_probe(self, probe: Probe | None) -> None:
        if probe is not None:
            set_border_title(self, f"next token: {probe.vocab_size:,} outputs")

    def watch_before(self) -> None:
        self._say_since()

    def watch_since(self) -> None:
        self._say_since()

    def _say_since(self) -> None:
        # the bars compare with different moments: one step, a nudge, the start of a run
        said = f"changes since {self.since}" if self.before is not None and self.since else ""
        set_border_subtitle(self, said)

    def _before_of(self, token: TokenProb) -> float | None:
        before = self.before
        if before is None:
            return None
        if before.label is not None and before.label.token_id == token.token_id:
            return before.label.prob
        for old in before.top:
            if old.token_id == token.token_id:
                return old.prob
        return None

    def _rows(self, height: int) -> tuple[list[TokenProb], bool]:
        """Rows to draw and whether the label is drawn apart, below the top rows."""
        probe = self.probe
        assert probe is not None
        label = probe.label
        rows = max(1, height - 1)
        top = list(probe.top[:rows])
        if label is None or any(t.token_id == label.token_id for t in top):
            return top, False
        return list(probe.top[: max(0, rows - 2)]) + [label], True

    def _rows_key(self) -> tuple:
        return (self.probe, self.before, self.sampled, self.size)

    def _build_lines(self) -> list[Row]:
        """Each row as (text, style) pieces; a style of None is the widget's own."""
        probe = self.probe
        if probe is None:
            return [[("waiting for the network…", Style(italic=True))]]
        width, height = self.size.width, self.size.height
        rows, label_apart = self._rows(height)
        style = self.cached_style
        dim = style("next-token-bars--dim")
        bar_style, gain, ghost_style = (style("next-token-bars--bar"), style("next-token-bars--gain"),
                                        style("next-token-bars--ghost"))
        label_id = probe.label.token_id if probe.label else None
        sampled_id = self.sampled.token.token_id if self.sampled else None
        text_w = min(TEXT_WIDTH, max(cell_len(t.text) for t in rows))
        id_w = max(len(str(t.token_id)) for t in rows)
        befores = [self._before_of(t) for t in rows]
        values = [pct(t.prob) if old is None else pct_change(old, t.prob)
                  for t, old in zip(rows, befores)]
        # wide enough for the usual values, so rows keep still, and for any longer one
        pct_w = max([15 if any(b is not None for b in befores) else 7]
                    + [len(v) for v in values])
        fixed = 2 + 1 + id_w + 1 + 1 + pct_w  # marker, spaces, id and value
        # A narrow panel cuts the token texts short before the bars or the values.
        text_w = min(text_w, max(MIN_TEXT_WIDTH, width - fixed - MIN_BAR_WIDTH))
        bar_w = max(1, width - fixed - text_w)
        scale = max([t.prob for t in rows] + [b for b in befores if b is not None])
        lines: list[Row] = []
        for n, (token, old) in enumerate(zip(rows, befores)):
            if label_apart and n == len(rows) - 1:
                lines.append([("  ⋮", dim)])
            marker = "▶" if token.token_id == label_id else ("◆" if token.token_id == sampled_id else " ")
            line_style = (
                style("next-token-bars--label") if token.token_id == label_id
                else style("next-token-bars--sampled") if token.token_id == sampled_id
                else None
            )
            name = Text(token.text)
            name.truncate(text_w, overflow="ellipsis", pad=True)
            line = [(f"{marker} ", line_style), (name.plain, line_style),
                    (f" {token.token_id:>{id_w}} ", dim)]
            now_cells = token.prob / scale * bar_w
            if old is None or old == token.prob:
                line.append((bar(now_cells).ljust(bar_w), bar_style))
            elif old < token.prob:
                # Whole cells the bar had before stay plain; the growth is coloured.
                new_bar, kept = bar(now_cells), int(old / scale * bar_w)
                line += [(new_bar[:kept], bar_style), (new_bar[kept:].ljust(bar_w - kept), gain)]
            else:
                now_bar = bar(now_cells)
                ghost = "░" * max(0, round(old / scale * bar_w) - len(now_bar))
                line += [(now_bar, bar_style), (ghost.ljust(bar_w - len(now_bar)), ghost_style)]
            line.append((" " + values[n].rjust(pct_w), line_style))
            lines.append(line)
        lines.append(self._summary(probe, dim))
        return lines

    def _summary(self, probe: Probe, dim: Style) -> Row:
        """Label rank, entropy and loss, each added only while it fits the width."""
        parts: list[Row] = []
        if probe.label is not None and probe.label_rank is not None:
            parts.append([("▶ ", self.cached_style("next-token-bars--label")),
                          (f"rank {probe.label_rank:,} of {probe.vocab_size:,}", None)])
        parts.append([(f"entropy {probe.entropy:.2f} nats", dim)])
        if probe.loss is not None:
            parts.append([(f"loss {probe.loss:.2f}", dim)])
        line: Row = []
        used = 0
        for part in parts:
            part_w = sum(cell_len(text) for text, _ in part)
            if line and used + 2 + part_w > self.size.width:
                break
            if line:
                line.append(("  ", None))
                used += 2
            line += part
            used += part_w
        return line
