"""Border titles and subtitles set only when their text changes.

Textual parses a border title and repaints the whole widget on every set, even of the text it
already shows: the loss chart did so every step, the bars every probe and the context panel
every slide (bench/README.md, note 6).
"""

from __future__ import annotations

from textual.widget import Widget


def set_border_title(widget: Widget, text: str) -> None:
    if widget.border_title != text:
        widget.border_title = text


def set_border_subtitle(widget: Widget, text: str) -> None:
    if widget.border_subtitle != text:
        widget.border_subtitle = text
