"""ContextWindow: the tokens that go into the network, as chips with ids, and the label."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from textual.reactive import reactive
from textual.widget import Widget

from model.api import Chunk, NudgeReport, Sampled
from nnio_tui.percent import pct, percent_number
from nnio_tui.widgets.border_text import set_border_title
from nnio_tui.widgets.segment_rows import Row, SegmentRows

BOLD = Style(bold=True)


class ContextWindow(SegmentRows, Widget):
    """Chips for the window's tokens (newest last), then the label and what happened to it.

    window_chunks holds the context tokens followed by the label token. Drawn from segments
    (SegmentRows): every chip moves on a slide, so each key redraws the whole panel, and as a
    Text that took 5.0 ms of the slid window's frame on a Zen 3; so, 3.1 ms (note 5 of
    bench/README.md).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "context-window--even",
        "context-window--odd",
        "context-window--id",
        "context-window--label",
        "context-window--dim",
    }

    DEFAULT_CSS = """
    ContextWindow {
        text-wrap: nowrap;
        text-overflow: ellipsis;
        height: 1fr;
    }
    """

    window_chunks: reactive[tuple[Chunk, ...]] = reactive(tuple)
    block_size = reactive(0)
    nudge: reactive[NudgeReport | None] = reactive(None)
    sampled: reactive[Sampled | None] = reactive(None)
    # the label lies in the text held out for validation, which training never sees
    held_out = reactive(False)

    FILL_WITH_BASE = True  # as its Text was: a cell-for-cell match (bench/README.md, note 5)

    def watch_window_chunks(self) -> None:
        self._update_title()

    def watch_block_size(self) -> None:
        self._update_title()

    def _update_title(self) -> None:
        n = max(0, len(self.window_chunks) - 1)
        set_border_title(self, f"context: {n} of max {self.block_size}")

    def _info_lines(self) -> list[Row]:
        """The label's row, and the nudge's when there is one."""
        lines: list[Row] = []
        label_style = self.cached_style("context-window--label")
        dim = self.cached_style("context-window--dim")
        if self.window_chunks:
            label = self.window_chunks[-1]
            # bracketed as the chips are, so "label [:] 25" is not read as "label: 25"
            row: Row = [("label ", None), (f"[{label.text}]", label_style),
                        (f" {label.token_id}", dim)]
            if self.held_out:  # on the label's row: the title has no room for it at 80x24
                row.append((" · held out", dim))
            lines.append(row)
        if self.nudge is not None:
            # Same compact form as the bars, so it fits the 80-column layout.
            before, after = percent_number(self.nudge.before), pct(self.nudge.after)
            lines.append([("p(label) ", None), (f"{before}→", None), (after, BOLD),
                          (" nudged", dim)])
        return lines

    def _sampled_parts(self) -> list[Row]:
        """What the last sample drew and from which candidates, as parts a row may end after."""
        if self.sampled is None:
            return []
        label_style = self.cached_style("context-window--label")
        dim = self.cached_style("context-window--dim")
        token = self.sampled.token
        parts: list[Row] = [
            [("sampled ", None), (f"[{token.text}]", label_style), (f" {token.token_id}", dim)],
            [(f" p {pct(token.prob)}", None)],
            [(f" T={self.sampled.temperature:g} from", dim)],
        ]
        for candidate in self.sampled.top:
            chosen = BOLD if candidate == token else None
            parts.append([(" ", None), (f"[{candidate.text}]", chosen),
                          (f" {pct(candidate.prob)}", dim)])
        return parts

    def _chip_lines(self, width: int, max_lines: int) -> tuple[list[list[tuple[Chunk, int]]], int]:
        """Pack chips from the newest backwards; returns lines and how many were left out."""
        context = self.window_chunks[:-1]
        arrow = cell_len(" -> ?")
        lines: list[list[tuple[Chunk, int]]] = []
        current: list[tuple[Chunk, int]] = []
        used = arrow
        i = len(context) - 1
        while i >= 0:
            chunk = context[i]
            w = max(cell_len(chunk.text) + 2, len(str(chunk.token_id))) + 1
            if current and used + w > width:
                lines.insert(0, current)
                if len(lines) == max_lines:
                    break
                current, used = [], 0
            current.insert(0, (chunk, w))
            used += w
            i -= 1
        else:
            lines.insert(0, current)
            return lines, 0
        left_out = i + 1
        # Make room for the "+N" marker on the first line, and for the arrow if it is the last.
        ends = arrow if len(lines) == 1 else 0
        while lines[0] and sum(w for _, w in lines[0]) + len(f"+{left_out} ") + ends > width:
            lines[0].pop(0)
            left_out += 1
        return lines, left_out

    def _rows_key(self) -> tuple:
        return (self.window_chunks, self.nudge, self.sampled, self.held_out, self.size)

    def _fit(self, row: Row, width: int) -> Row:
        return cut_to_width(row, width)

    def shown(self) -> str:
        """The panel's text, line by line (what the rows draw, before any cut to the width)."""
        return "\n".join("".join(text for text, _ in line) for line in self._build_lines())

    def _build_lines(self) -> list[Row]:
        if not self.window_chunks:
            return []
        width, height = self.size.width, self.size.height
        info = self._info_lines()
        sampled = self._sampled_parts()
        # a sample keeps two rows, so that some of its candidates show, as a nudge keeps one
        chip_rows = max(2, height - len(info) - (2 if sampled else 0))
        lines, left_out = self._chip_lines(width, max(1, chip_rows // 2))
        # the sample's candidates wrap into the rows the chips leave free
        info += wrap_parts(sampled, width, max(1, height - 2 * len(lines) - len(info)))
        parity = {0: self.cached_style("context-window--even"),
                  1: self.cached_style("context-window--odd")}
        id_style = self.cached_style("context-window--id")
        dim = self.cached_style("context-window--dim")
        out: list[Row] = []
        first_index = left_out
        for n, line in enumerate(lines):
            chips: Row = []
            ids: Row = []
            if n == 0 and left_out:
                marker = f"+{left_out} "
                chips.append((marker, dim))
                ids.append((" " * len(marker), None))
            for j, (chunk, w) in enumerate(line):
                index = first_index + j
                chips.append(("[" + chunk.text + "]", parity[index % 2]))
                chips.append((" " * (w - cell_len(chunk.text) - 2), None))
                ids.append((str(chunk.token_id).ljust(w), id_style))
            first_index += len(line)
            if n == len(lines) - 1:
                chips.append(("-> ?", BOLD))
            out += [chips, ids]
        out += info
        return out


def wrap_parts(parts: list[Row], width: int, max_rows: int) -> list[Row]:
    """Parts packed into rows of width cells, a row ending only between parts; at most
    max_rows rows, the last one cut with an ellipsis when parts are left over."""
    rows: list[Row] = []
    row: Row = []
    used = 0
    for i, part in enumerate(parts):
        if row and used + sum(cell_len(text) for text, _ in part) > width:
            if len(rows) == max_rows - 1:
                return [*rows, cut_to_width(row + [seg for p in parts[i:] for seg in p], width)]
            rows.append(row)
            row, used = [], 0
            (first, style), *rest = part  # a new row starts at the part's text
            part = [(first[1:], style), *rest] if first.startswith(" ") else part
        row = row + part
        used += sum(cell_len(text) for text, _ in part)
    return [*rows, row] if row else rows


def cut_to_width(line: Row, width: int) -> Row:
    """The line cut to width cells, its last cell an ellipsis in the style of the cell it
    replaces (as Textual cuts a Text with text-overflow: ellipsis)."""
    if sum(cell_len(text) for text, _ in line) <= width:
        return line
    out: Row = []
    used = 0
    for text, style in line:
        w = cell_len(text)
        if used + w <= width - 1:
            out.append((text, style))
            used += w
            continue
        if used < width - 1:
            out.append((set_cell_size(text, width - 1 - used), style))
        out.append(("…", style))
        break
    return out
