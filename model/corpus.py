"""The corpus: text from files, folders, .jsonl, .parquet or stdin, tokenized once and cached."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.corpus_files import (
    JsonLines,
    ParquetRows,
    Progress,
    StdinText,
    Stream,
    TextFiles,
    folder_files,
    spool_stdin,
)
from model.errors import CorpusError
from model.run_files import corpus_source_label, existing_corpus_path
from model.token_cache import (
    IdsWriter,
    atomic_write,
    cache_dir,
    fingerprint,
    load_cached,
    renamed_warnings,
)

# Pieces tokenized in parallel. tiktoken's pre-tokenizer always breaks just after a newline that
# precedes an ASCII letter, and just before a space between two ASCII letters, so pieces cut
# there give the same ids as one whole-text encode (a 200 MB single line still splits). The
# older gpt2-style pattern merges newline runs differently, so it only gets the space rule.
PIECE_CHARS = 1 << 20
_SAFE_BREAK = re.compile(r"\n(?=[A-Za-z])|(?<=[A-Za-z])(?= [A-Za-z])")
_SAFE_BREAK_GPT2 = re.compile(r"(?<=[A-Za-z])(?= [A-Za-z])")



@dataclass(frozen=True)
class Corpus:
    """Token ids of a whole corpus (possibly memory-mapped) and where they came from."""

    ids: np.ndarray  # (N,) uint32
    name: str
    source: str
    encoding: str
    warnings: tuple[str, ...] = ()
    n_chars: int = 0
    n_bytes: int = 0

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])

    @property
    def split(self) -> int:
        """ids[:split] train, ids[split:] validation (the last 10%)."""
        return self.n_tokens - max(1, self.n_tokens // 10)

    def check_fits(self, block_size: int, fixed: bool = False) -> None:
        """Raise CorpusError unless both splits hold a window of block_size plus its label.

        Args:
            block_size: the model's window length.
            fixed: the block size comes from a checkpoint, so only a longer corpus helps.
        """
        shortest = min(self.split, self.n_tokens - self.split)
        if shortest >= block_size + 1:
            return
        noun = "token" if self.n_tokens == 1 else "tokens"
        start = f"corpus {self.name} has {self.n_tokens:,} {noun}"
        if shortest < 2 or fixed:
            need = 10 * (block_size + 1)  # the validation split, a tenth, must hold a window too
            raise CorpusError(
                f"{start}, too short for the model's context of {block_size} plus its label: "
                f"use a corpus of at least {need:,} tokens (a tenth is kept for validation)")
        raise CorpusError(
            f"{start}, too short for a context of {block_size} plus its label in both splits: "
            f"use --block-size {shortest - 1} or a longer corpus")


def sample_corpus_path() -> Path:
    """The bundled corpus: inside the installed package, or beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for path in (here / "_sample_data" / "corpus", here.parent / "sample_data" / "corpus"):
        if path.is_dir():
            return path
    raise CorpusError("the bundled sample corpus is missing: reinstall nnio-tui or name a corpus")


def corpus_name(source: str | Path | None) -> str:
    """The short name a corpus source goes by (in the header and in default run paths)."""
    if source is None:
        return "sample_data"
    if str(source) == "-":
        return "stdin"
    return Path(source).expanduser().name


def _documents(source: str | Path | None, warnings: list[str], spool: Path | None) -> tuple[
        str, str, list[Path] | None, Stream]:
    """Name, source label, files to fingerprint (None for stdin) and the documents to read;
    spool holds what stdin gave when source is "-"."""
    if source is None:
        folder = sample_corpus_path()
        files = folder_files(folder)
        return corpus_name(None), corpus_source_label(None), files, TextFiles(files, warnings)
    if spool is not None:
        return corpus_name("-"), "-", None, StdinText(spool, warnings)
    path = existing_corpus_path(source)
    name = corpus_name(source)
    label = corpus_source_label(source)  # saved in checkpoints
    if path.is_dir():
        files = folder_files(path)
        return name, label, files, TextFiles(files, warnings)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return name, label, [path], JsonLines([path], warnings)
    if suffix == ".parquet":
        return name, label, [path], ParquetRows([path], warnings)
    return name, label, [path], TextFiles([path], warnings, strict=True)


def _pieces(text: str, safe_break: re.Pattern) -> Iterator[str]:
    start = 0
    while len(text) - start > PIECE_CHARS:
        found = safe_break.search(text, start + PIECE_CHARS)
        if found is None:
            break
        yield text[start : found.end()]
        start = found.end()
    yield text[start:]


def _stream_pieces(blocks: Iterator[tuple[str, int]],
                   safe_break: re.Pattern) -> Iterator[tuple[str, int]]:
    """The pieces _pieces would cut from the joined blocks, as (piece, bytes read for it).

    A break is looked for only where the text read so far can confirm it: the patterns look
    one character behind and one ahead.
    """
    text, weight, looked = "", 0, PIECE_CHARS
    for block, size in blocks:
        text += block
        weight += size
        while len(text) > PIECE_CHARS:
            found = safe_break.search(text, max(PIECE_CHARS, looked), len(text) - 1)
            if found is None:
                looked = max(PIECE_CHARS, len(text) - 2)
                break
            yield text[: found.end()], weight
            text, weight, looked = text[found.end():], 0, PIECE_CHARS
    yield text, weight


def _jobs(docs: Iterator[Iterator[tuple[str, int]]], skip_blank: bool) -> Iterator[
        tuple[str | None, int]]:
    """(piece, weight) to encode, None between two documents.

    skip_blank: leave out documents of whitespace only (as empty files are left out); a
    document's pieces wait until one shows text, so no separator goes out for it.
    """
    shown = False
    for doc in docs:
        held: list[tuple[str, int]] = []
        started = not skip_blank
        if started and shown:
            yield None, 0
        for piece, weight in doc:
            if not started:
                if not piece.strip():
                    held.append((piece, weight))
                    continue
                started = True
                if shown:
                    yield None, 0
                yield from held
                held = []
            yield piece, weight
        if started:
            shown = True
        elif held:
            yield "", sum(w for _, w in held)  # nothing to encode, but the progress moves on


def _tokenize(jobs: Iterator[tuple[str | None, int]], enc, total: int,
              on_progress: Progress | None, add: Callable[[np.ndarray], None]) -> None:
    """Encode the jobs in parallel, a few at a time, handing id arrays to add in order.

    Short pieces (the records of a .jsonl, a folder of small files) travel in batches of
    about PIECE_CHARS characters: one future and one cache write per batch instead of per
    record.
    """
    eot = np.array([enc.eot_token], dtype=np.uint32)

    def encode(batch: list[str | None]) -> np.ndarray:
        parts = [eot if piece is None else np.array(enc.encode_ordinary(piece), dtype=np.uint32)
                 for piece in batch]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    workers = os.cpu_count() or 1
    pending: deque[tuple[int, Future]] = deque()
    done = 0
    total = total or 1

    def collect() -> None:
        nonlocal done
        weight, future = pending.popleft()
        add(future.result())
        done += weight
        if on_progress is not None:
            on_progress("tokenizing", min(1.0, done / total))

    def submit(batch: list[str | None], weight: int) -> None:
        pending.append((weight, pool.submit(encode, batch)))
        if len(pending) >= 2 * workers:
            collect()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            batch: list[str | None] = []
            chars = weight = 0
            for piece, piece_weight in jobs:
                batch.append(piece)
                chars += len(piece) if piece else 0
                weight += piece_weight
                if chars >= PIECE_CHARS:
                    submit(batch, weight)
                    batch, chars, weight = [], 0, 0
            if batch:
                submit(batch, weight)
            while pending:
                collect()
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise


def _safe_break(enc) -> re.Pattern:
    return _SAFE_BREAK_GPT2 if enc.name in ("gpt2", "r50k_base", "p50k_base") else _SAFE_BREAK


def tokenize_pieces(docs: list[str], enc, on_progress: Progress | None = None) -> list[np.ndarray]:
    """Encode documents (ordinary text) joined by the end-of-text id, in parallel pieces.

    Pieces are cut and queued a few at a time, so the text is never held twice.

    Args:
        docs: document texts; special-token spellings inside them are ordinary text.
        enc: a tiktoken Encoding.
        on_progress: called with ("tokenizing", fraction done); if it raises, the pieces
            still queued are dropped.

    Returns:
        uint32 id arrays whose concatenation is the corpus.
    """
    safe_break = _safe_break(enc)
    parts: list[np.ndarray] = []
    as_pieces = (((piece, len(piece)) for piece in _pieces(doc, safe_break)) for doc in docs)
    _tokenize(_jobs(as_pieces, skip_blank=False), enc, sum(len(doc) for doc in docs),
              on_progress, parts.append)
    return parts


def tokenize_documents(docs: list[str], enc, on_progress: Progress | None = None) -> np.ndarray:
    """tokenize_pieces, joined: (N,) uint32 ids."""
    parts = tokenize_pieces(docs, enc, on_progress)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


def open_corpus(
    source: str | Path | None,
    enc,
    encoding_name: str | None = None,
    on_progress: Progress | None = None,
) -> Corpus:
    """Read and tokenize a corpus, or map its cached ids.

    Text files are read, decoded and tokenized a block at a time, and their ids go straight
    into the token cache, so a corpus of many gigabytes opens in little memory.

    Args:
        source: a text file, a folder of text files (recursive, sorted), .jsonl with a "text"
            field, .parquet with a "text" column, "-" for stdin, or None for the bundled sample.
        enc: the tiktoken Encoding to use.
        encoding_name: cache key part; defaults to enc.name.
        on_progress: called with (what, fraction) during slow work.

    Returns:
        The corpus; the same content opened again maps its cached ids instead of re-tokenizing.

    Raises:
        CorpusError: missing, unreadable, binary or empty input.
    """
    encoding = encoding_name or enc.name
    cache = cache_dir()
    spool = None
    if str(source) == "-":
        # read once, into a file: tokenized from there like any other (never all in memory)
        folders = [f for f in (cache, Path(tempfile.gettempdir())) if f is not None]
        spool = spool_stdin(folders, sys.stdin.buffer)
    try:
        return _open(source, spool, enc, encoding, cache, on_progress)
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)


def _open(source: str | Path | None, spool: Path | None, enc, encoding: str,
          cache: Path | None, on_progress: Progress | None) -> Corpus:
    warnings: list[str] = []
    name, label, files, documents = _documents(source, warnings, spool)
    # The files' stat before anything is read: the index entry, and the check that they
    # did not change while they were read.
    stamp = fingerprint(files, encoding) if files is not None else None
    fingerprint_path = None
    if stamp is not None and cache is not None:
        fingerprint_path = cache / "index" / stamp
        if fingerprint_path.is_file():
            hit = load_cached(cache, fingerprint_path.read_text().strip())
            if hit is not None:
                ids, meta = hit
                return Corpus(ids, name, label, encoding, tuple(renamed_warnings(meta, files)),
                              meta.get("n_chars", 0), meta.get("n_bytes", 0))
    if on_progress is not None:
        on_progress("reading", 0.0)
    key = documents.content_key(encoding, on_progress)
    if on_progress is not None:
        on_progress("reading", 1.0)
    hit = load_cached(cache, key) if cache is not None else None
    if hit is not None:
        ids, meta = hit  # the files were not read: their warnings come from the cache
        warnings = renamed_warnings(meta, files)
    else:
        # messages name the path as the user typed it; the label is resolved for checkpoints
        shown = label if source is None else "on stdin" if label == "-" else str(source)
        empty = f"corpus {shown} is empty: it needs text"

        def unchanged() -> bool:  # stdin's copy is ours: it cannot change
            return files is None or fingerprint(files, encoding) == stamp
        ids, meta = _tokenize_into_cache(documents, enc, cache, key, documents.total(),
                                         on_progress, warnings, empty, unchanged)
        if "changed" in meta:
            warnings.append(f"{shown} changed while it was read, so its tokens may mix old and"
                            " new text: open it again once it is written")
    if (fingerprint_path is not None and cache is not None and "cache_error" not in meta
            and "changed" not in meta):
        try:
            fingerprint_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(fingerprint_path, key.encode())
        except OSError as err:
            meta["cache_error"] = err.strerror
    if "cache_error" in meta:
        # A read-only cache only costs speed next time; say so instead of failing.
        warnings.append(f"token cache not written ({meta['cache_error']}): the next open"
                        " re-tokenizes")
    return Corpus(ids, name, label, encoding, tuple(warnings), meta.get("n_chars", 0),
                  meta.get("n_bytes", 0))


def _tokenize_into_cache(documents: Stream, enc, cache: Path | None, key: str,
                         total: int, on_progress: Progress | None,
                         warnings: list[str], empty: str,
                         unchanged: Callable[[], bool]) -> tuple[np.ndarray, dict]:
    """Tokenize the documents into the cache under key; the ids and what was counted.

    Raises CorpusError(empty) when no document holds more than whitespace. If unchanged()
    says the files changed since the key was made, the ids stay out of the cache (meta
    then holds "changed").
    """
    safe_break = _safe_break(enc)
    n_chars = n_bytes = n_docs = 0
    has_text = False

    def counted(pieces: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        nonlocal n_chars, n_bytes, has_text
        for piece, weight in pieces:
            has_text = has_text or (piece != "" and not piece.isspace())
            n_chars += len(piece)
            n_bytes += len(piece.encode("utf-8", errors="surrogatepass"))
            yield piece, weight

    def jobs() -> Iterator[tuple[str | None, int]]:
        nonlocal n_docs
        docs = (_stream_pieces(blocks, safe_break) for blocks in documents.documents())
        for piece, weight in _jobs((counted(doc) for doc in docs),
                                   skip_blank=documents.skip_blank):
            n_docs += piece is None
            yield piece, weight

    out = IdsWriter(cache, key)
    try:
        _tokenize(jobs(), enc, total, on_progress, out.add)
        separators = n_docs * len("<|endoftext|>")
        # the warnings so far (reading, decoding) are the corpus's own: they go in the cache
        meta = {"warnings": list(warnings), "n_chars": n_chars + separators,
                "n_bytes": n_bytes + separators}
        if documents.kind != "stdin":  # stdin's copy is gone once the corpus is open
            meta["files"] = [str(path) for path in documents.files]
        if not has_text:
            blank = empty.replace(" is empty:", " holds only whitespace:")
            raise CorpusError(blank if n_chars else empty)
        if unchanged():
            ids = out.finish(meta)
        else:
            ids, meta["changed"] = out.in_memory(), True
    except BaseException:
        out.abort()
        raise
    if out.error is not None:
        meta["cache_error"] = out.error.strerror or str(out.error)
    return ids, meta
