"""StyleCache: a widget's base and component styles, read once until it is restyled."""

from __future__ import annotations

from rich.style import Style


class StyleCache:
    """Mix into a Widget (before Widget) that looks its styles up while it draws.

    Each lookup walks every ancestor to blend their backgrounds (`DOMNode.rich_style`), and
    Textual drops its own cache of component styles on every refresh, so a new probe paid
    ~0.3 ms per component class on a Zen 3 while training (bench/README.md, note 6). This
    cache lasts until Textual restyles the widget (`notify_style_update`: a new theme, or a
    class or pseudo-class that changes its rules). A class that changed only an ancestor's
    background would leave it stale; app.tcss has none.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._styles: dict[tuple[str | None, bool], Style] = {}

    def notify_style_update(self) -> None:
        self._styles = {}
        super().notify_style_update()  # type: ignore[misc]

    def cached_style(self, component: str | None = None, *, partial: bool = False) -> Style:
        """The widget's own style (no component) or a component class's, as Textual gives them."""
        key = (component, partial)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = (
                self.rich_style if component is None  # type: ignore[attr-defined]
                else self.get_component_rich_style(component, partial=partial))  # type: ignore[attr-defined]
        return style
