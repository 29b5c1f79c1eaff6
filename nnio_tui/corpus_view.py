"""The corpus side of a session, for the UI thread: token chunks by page, never the model."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from model.api import Chunk, NnioError, Session


class CorpusView:
    """The read-only corpus side of a session, which the UI thread may call directly.

    chunks() reads token ids and the tokenizer, never the model, so it is safe beside a
    training step; routing it through the worker would make scrolling wait for a step.
    Chunks are kept by page: sliding the window reads what the token view already read,
    which matters when the session is in another process. If that process has died, the
    tokens not yet read show as "?" and on_error hears the reason once.
    """

    PAGE = 256
    MAX_PAGES = 64
    MISSING = Chunk(-1, "?")
    """Stands for a token that could not be read."""

    def __init__(self, session: Session,
                 on_error: Callable[[str], object] | None = None) -> None:
        self._session = session
        self.n_tokens = session.n_tokens
        self._pages: OrderedDict[int, list[Chunk]] = OrderedDict()
        self._on_error = on_error
        self._told = False

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        """Display chunks for tokens [start, stop), clipped to the corpus."""
        start, stop = max(0, start), min(stop, self.n_tokens)
        found: list[Chunk] = []
        for page in range(start // self.PAGE, (stop - 1) // self.PAGE + 1):
            first = page * self.PAGE
            found += self._page(page)[max(start, first) - first : stop - first]
        return found

    def _page(self, page: int) -> list[Chunk]:
        chunks = self._pages.get(page)
        if chunks is None:
            first = page * self.PAGE
            stop = min(first + self.PAGE, self.n_tokens)
            try:
                chunks = self._session.chunks(first, stop)
            except NnioError as error:
                # called from the UI thread, which must keep drawing: placeholders, not kept
                if not self._told and self._on_error is not None:
                    self._told = True
                    self._on_error(str(error))
                return [self.MISSING] * (stop - first)
            self._pages[page] = chunks
            if len(self._pages) > self.MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page)
        return chunks
