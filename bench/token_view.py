"""Token view benchmark: drawing the corpus panel at the start, middle and end of 25M tokens vs 10K.

Run: python bench/token_view.py [--tokens 25000000] [--repeats 30]

The corpus is the bundled sample's cl100k ids, tiled into a memory-mapped uint32 file of
--tokens ids (as model/corpus.py stores them), and read the way the app reads it: the
session's chunks(start, stop) path (memmap slice -> model.vocab.chunks_for). A small app holds
one TokenChunks (100 x 10 cells, as at 100x30). One frame = slide the window one token
(which lays the visible lines out again, reading pages of chunks) plus render_lines (the
lines that the slide changed drawn as strips, the others from Textual's cache; all of them
when the view scrolled). "cold" empties the widget's page cache first, as
a jump to a far position does; "warm" is a slide within pages already read.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from textual.app import App, ComposeResult
from textual.geometry import Region

from model.corpus import open_corpus
from model.vocab import chunks_for, load_encoding
from nnio_tui.widgets.token_chunks import TokenChunks


class MemmapCorpus:
    """What CorpusView offers the widget (n_tokens, chunks), over a memmapped id file."""

    def __init__(self, enc, ids: np.ndarray) -> None:
        self._enc, self._ids = enc, ids
        self.n_tokens = int(ids.shape[0])

    def chunks(self, start: int, stop: int):
        start, stop = max(0, start), min(stop, self.n_tokens)
        return chunks_for(self._enc, [int(i) for i in self._ids[start:stop]])


class TokenApp(App):
    CSS = "TokenChunks { height: 10; }"

    def compose(self) -> ComposeResult:
        yield TokenChunks()


def frame_ms(widget: TokenChunks, start: int, cold: bool) -> float:
    if cold:
        widget._pages.clear()
    region = Region(0, 0, widget.size.width, widget.size.height)
    t = time.perf_counter()
    widget.window_start = start  # the watcher lays the lines out synchronously
    widget.render_lines(region)
    return 1000 * (time.perf_counter() - t)


async def measure(corpora: dict[str, MemmapCorpus], repeats: int) -> dict:
    """Median (cold, warm) frame ms by (corpus, position), printed as they come."""
    results: dict[tuple[str, str], list[float]] = {}
    app = TokenApp()
    async with app.run_test(size=(100, 12)) as pilot:
        widget = app.query_one(TokenChunks)
        widget.context = 8
        for name, corpus in corpora.items():
            widget.corpus = corpus
            await pilot.pause()
            n = corpus.n_tokens
            for where, pos in (("start", 0), ("middle", n // 2), ("end", n - 40)):
                row = []
                for cold in (True, False):
                    times = [frame_ms(widget, min(pos + i, n - 10), cold) for i in range(repeats)]
                    row.append(statistics.median(times))
                print(f"  {name:3s} corpus, {where:6s}: cold {row[0]:6.2f} ms   warm {row[1]:6.2f} ms")
                results[(name, where)] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=25_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"command: python bench/token_view.py --tokens {args.tokens} --repeats {args.repeats}")
    enc = load_encoding("cl100k_base")
    sample = np.asarray(open_corpus(None, enc, "cl100k_base").ids, dtype=np.uint32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ids.u32"
        reps = -(-args.tokens // len(sample))
        np.tile(sample, reps)[: args.tokens].tofile(path)
        big = np.memmap(path, dtype=np.uint32, mode="r")
        corpora = {"10K": MemmapCorpus(enc, np.array(sample[:10_000])),
                   "big": MemmapCorpus(enc, big)}
        results = asyncio.run(measure(corpora, args.repeats))
        del big
    small = statistics.mean(v[0] for (name, _), v in results.items() if name == "10K")
    large = statistics.mean(v[0] for (name, _), v in results.items() if name == "big")
    print(f"  cold frame time, {args.tokens:,} tokens / 10K: {large / small:.2f}  (target ~1)")


if __name__ == "__main__":
    main()
