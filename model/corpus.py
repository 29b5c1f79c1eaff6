"""The corpus: text from files, folders, .jsonl, .parquet or stdin, tokenized once and cached."""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import CorpusError

CACHE_VERSION = 2  # 2: byte-order marks are dropped; file keys hold inode and ctime
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".org", ".tex", ".py", ".csv", ".tsv", ".html"}
# Pieces tokenized in parallel. tiktoken's pre-tokenizer always breaks just after a newline that
# precedes an ASCII letter, and just before a space between two ASCII letters, so pieces cut
# there give the same ids as one whole-text encode (a 200 MB single line still splits). The
# older gpt2-style pattern merges newline runs differently, so it only gets the space rule.
PIECE_CHARS = 1 << 20
_SAFE_BREAK = re.compile(r"\n(?=[A-Za-z])|(?<=[A-Za-z])(?= [A-Za-z])")
_SAFE_BREAK_GPT2 = re.compile(r"(?<=[A-Za-z])(?= [A-Za-z])")

Progress = Callable[[str, float], None]


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
        start = f"corpus {self.name} has {self.n_tokens:,} tokens"
        if shortest < 2 or fixed:
            need = 10 * (block_size + 1)
            raise CorpusError(
                f"{start}, too short for the model's context of {block_size} plus its label: "
                f"use a corpus of at least {need:,} tokens")
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


def _cache_dir() -> Path | None:
    if "NNIO_TUI_CACHE_DIR" in os.environ:
        return Path(os.environ["NNIO_TUI_CACHE_DIR"]) / "tokens"
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnio-tui")) / "tokens"


def _is_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return bool(head) and controls / len(head) > 0.1


def _utf16_bom(data: bytes) -> bool:
    """Windows editors save "Unicode" text as UTF-16 with a byte-order mark (full of NULs)."""
    return data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _decode(data: bytes, label: str, warnings: list[str]) -> str:
    # utf-8-sig and utf-16 drop the byte-order mark, which would otherwise become a token
    codec = "utf-16" if _utf16_bom(data) else "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        text = data.decode(codec, errors="replace")
        warnings.append(f"{label}: invalid {codec.upper().removesuffix('-SIG')} bytes were"
                        " replaced with U+FFFD")
        return text


def _folder_files(folder: Path) -> list[Path]:
    files = [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    if not files:
        raise CorpusError(
            f"no text files in folder {folder} (looking for {', '.join(sorted(TEXT_SUFFIXES))})"
        )
    return files


def _file_bytes(files: list[Path]) -> int:
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError as err:  # gone or unreadable since the folder was listed
            raise CorpusError(f"cannot read {path}: {err.strerror}") from None
    return total


class _Stream:
    """Documents read from files a little at a time, so the whole text is never in memory.

    documents() yields each document as (text, weight) blocks; the weights add up to total()
    (the progress bar's measure). The cache key hashes the files' bytes and the kind, so the
    same file read another way does not share ids.
    """

    kind = "files"
    skip_blank = True  # leave out documents of whitespace only (empty files)

    def __init__(self, files: list[Path], warnings: list[str]) -> None:
        self.files, self.warnings = files, warnings

    def total(self) -> int:
        return _file_bytes(self.files)

    def content_key(self, encoding: str, on_progress: Progress | None) -> str:
        """A cache key over the files' bytes, so a copy or a touched file maps the same ids."""
        h = hashlib.sha256(f"v{CACHE_VERSION}:{self.kind}:{encoding}".encode())
        total, done = _file_bytes(self.files) or 1, 0
        for path in self.files:
            size = 0
            for block in _blocks(path):
                h.update(block)
                size += len(block)
                done += len(block)
                if on_progress is not None:
                    on_progress("reading", min(1.0, done / total))
            h.update(b"\0" + size.to_bytes(8, "little"))  # one file's end: no two lists mix
        return h.hexdigest()

    def documents(self) -> Iterator[Iterator[tuple[str, int]]]:
        raise NotImplementedError


class _TextFiles(_Stream):
    """Text files, each one document, read a block at a time."""

    def __init__(self, files: list[Path], warnings: list[str], strict: bool = False) -> None:
        super().__init__(files, warnings)
        self.strict = strict

    def documents(self) -> Iterator[Iterator[tuple[str, int]]]:
        """Each readable text file as (text, bytes read for it) blocks; binary ones skipped."""
        for path in self.files:
            blocks = _blocks(path)
            head = next(blocks, b"")
            if not _utf16_bom(head) and _is_binary(head):
                if self.strict:
                    raise CorpusError(
                        f"{path} looks like a binary file, not text: name a text file")
                self.warnings.append(f"{path}: skipped, it looks binary")
                continue
            yield _decoded(path, head, blocks, self.warnings)


class _JsonLines(_Stream):
    """A .jsonl file read a line at a time: each line's "text" string is a document."""

    kind = "jsonl"
    skip_blank = False  # a record's text is a document even when it is empty

    def documents(self) -> Iterator[Iterator[tuple[str, int]]]:
        (path,) = self.files
        seen = broken = found = 0
        weight = 0  # bytes of lines skipped since the last document
        for raw in _lines(path):
            weight += len(raw)
            for line in raw.splitlines():  # as bytes.splitlines did on the whole file: \r too
                if not line.strip():
                    continue
                seen += 1
                try:
                    text = json.loads(line)["text"]
                    if not isinstance(text, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    broken += 1
                    continue
                found += 1
                yield iter(((text, weight),))
                weight = 0
        if broken:
            self.warnings.append(
                f"{path}: skipped {broken} of {seen} lines without valid JSON text")
        if not found:
            raise CorpusError(f'no line of {path} is JSON with a "text" string field')


class _ParquetRows(_Stream):
    """A .parquet file read a batch of rows at a time: each "text" string is a document."""

    kind = "parquet"
    skip_blank = False

    _file = None

    def _opened(self):
        """The pyarrow file, opened at first use: a cached corpus needs no pyarrow."""
        if self._file is not None:
            return self._file
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise CorpusError(
                "reading .parquet needs pyarrow: pip install 'nnio-tui[parquet]'") from None
        (path,) = self.files
        try:
            opened = pq.ParquetFile(path)
            names = opened.schema_arrow.names
        except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise CorpusError(f"cannot read {path} as parquet: {err}") from None
        if "text" not in names:
            raise CorpusError(f"{path} has no 'text' column (columns: {', '.join(names)})")
        self._file = opened
        return opened

    def total(self) -> int:
        return self._opened().metadata.num_rows

    def documents(self) -> Iterator[Iterator[tuple[str, int]]]:
        (path,) = self.files
        try:
            for batch in self._opened().iter_batches(columns=["text"], batch_size=1024):
                rows = batch.column(0).to_pylist()
                weight = 0
                for text in rows:
                    weight += 1
                    if isinstance(text, str):
                        yield iter(((text, weight),))
                        weight = 0
        except CorpusError:
            raise
        except Exception as err:  # noqa: BLE001 - as above
            raise CorpusError(f"cannot read {path} as parquet: {err}") from None


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            yield from f
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None


READ_BYTES = 1 << 22  # a block of a text file read at a time


def _blocks(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while block := f.read(READ_BYTES):
                yield block
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder where a file was expected") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None


_FFFD = "\ufffd".encode()


def _decoded(path: Path, head: bytes, rest: Iterator[bytes],
             warnings: list[str]) -> Iterator[tuple[str, int]]:
    """A file's text a block at a time, as _decode would give it whole."""
    if _utf16_bom(head):  # rare, and never big: decoded whole, as before
        data = head + b"".join(rest)
        yield _decode(data, str(path), warnings), len(data)
        return
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    # Replacements show as U+FFFD beyond those the bytes spell themselves.
    spelled = replaced = 0
    tail = b""
    for block in itertools.chain((head,), rest):
        text = decoder.decode(block)
        spelled += (tail + block).count(_FFFD)  # one split across blocks is counted once
        tail = (tail + block)[-2:]
        replaced += text.count("\ufffd")
        yield text, len(block)
    text = decoder.decode(b"", final=True)
    replaced += text.count("\ufffd")
    if text:
        yield text, 0
    if replaced > spelled:
        warnings.append(f"{path}: invalid UTF-8 bytes were replaced with U+FFFD")


def _documents(source: str | Path | None, warnings: list[str]) -> tuple[
        str, str, list[Path] | None, _Stream | Callable[[], list[str]]]:
    """Name, source label, files to fingerprint (None for stdin), and the documents: text
    files as a stream (_Stream), stdin as a reader of the whole text."""
    if source is None:
        folder = sample_corpus_path()
        files = _folder_files(folder)
        return corpus_name(None), "<sample>", files, _TextFiles(files, warnings)
    if str(source) == "-":
        return corpus_name("-"), "-", None, lambda: [_decode(sys.stdin.buffer.read(), "stdin",
                                                            warnings)]
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {path} (check the path)")
    name = corpus_name(source)
    # Saved in checkpoints: absolute, so a resume from another folder finds the same text.
    label = str(path.resolve())
    if path.is_dir():
        files = _folder_files(path)
        return name, label, files, _TextFiles(files, warnings)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return name, label, [path], _JsonLines([path], warnings)
    if suffix == ".parquet":
        return name, label, [path], _ParquetRows([path], warnings)
    return name, label, [path], _TextFiles([path], warnings, strict=True)


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


def _fingerprint(files: list[Path], encoding: str) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}:{encoding}".encode())
    for path in files:
        try:
            st = path.stat()
        except OSError as err:  # gone or unreadable since the folder was listed
            raise CorpusError(f"cannot read {path}: {err.strerror}") from None
        # ctime and inode change when a copy keeps size and mtime (cp -p, rsync -t, tar)
        h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                 f"\0{st.st_ino}\n".encode())
    return h.hexdigest()


def _content_key(docs: list[str], encoding: str) -> tuple[str, int]:
    """The cache key of these documents, and their size in UTF-8 bytes, in one pass.

    Each document is encoded a slice at a time: a whole copy of a large one would cost
    as much memory as the text itself.
    """
    h = hashlib.sha256(f"v{CACHE_VERSION}:{encoding}".encode())
    n_bytes = 0
    for doc in docs:
        h.update(len(doc).to_bytes(8, "little"))
        for start in range(0, len(doc), PIECE_CHARS):
            data = doc[start:start + PIECE_CHARS].encode("utf-8", errors="surrogatepass")
            h.update(data)
            n_bytes += len(data)
    return h.hexdigest(), n_bytes


def _load_cached(cache: Path, key: str) -> tuple[np.ndarray, dict] | None:
    ids_path, meta_path = cache / f"{key}.u32", cache / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if ids_path.stat().st_size != 4 * meta["n_tokens"] or meta["n_tokens"] == 0:
            return None
        return np.memmap(ids_path, dtype=np.uint32, mode="r"), meta
    except (OSError, ValueError, KeyError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or Ctrl+C leaves no half file behind
        raise


def _write_part(f, part: np.ndarray) -> None:
    part.astype("<u4", copy=False).tofile(f)


class _Ids:
    """A corpus's ids as they come: written straight into the token cache, so they are
    never all in memory, or kept in memory when the cache cannot be written."""

    def __init__(self, cache: Path | None, key: str) -> None:
        self.n_tokens = 0
        self.error: OSError | None = None
        self._parts: list[np.ndarray] = []
        self._cache, self._key = cache, key
        self._file = None
        if cache is None:
            return
        self._tmp = cache / f".{key}.u32.{os.getpid()}.tmp"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - open until finish or abort
        except OSError as err:
            self._fail(err)

    def add(self, part: np.ndarray) -> None:
        if self._file is not None:
            try:
                _write_part(self._file, part)
                self.n_tokens += int(part.shape[0])
                return
            except OSError as err:
                self._fail(err)
        self._parts.append(part)
        self.n_tokens += int(part.shape[0])

    def _fail(self, err: OSError) -> None:
        """Go on in memory with what reached the file so far (a full disk, a read-only cache)."""
        self.error = err
        if self._file is not None:
            self._file.close()
            self._file = None
            self._parts = [self._read_back(self._tmp)]
        self._discard()

    def _read_back(self, path: Path) -> np.ndarray:
        try:
            return np.fromfile(path, dtype="<u4", count=self.n_tokens)
        except OSError as err:
            raise CorpusError(f"the token cache lost its ids ({err.strerror}): open the corpus"
                              " again") from None

    def _discard(self) -> None:
        if self._cache is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._discard()

    def finish(self, meta: dict) -> np.ndarray:
        """All the ids: mapped from the cache when it took them, else joined in memory."""
        if self._file is None:
            return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.uint32)
        assert self._cache is not None
        ids_path, path = self._cache / f"{self._key}.u32", self._tmp
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._tmp, ids_path)
            path = ids_path
            meta = {**meta, "n_tokens": self.n_tokens, "version": CACHE_VERSION}
            _atomic_write(self._cache / f"{self._key}.json", json.dumps(meta).encode())
            mapped = _load_cached(self._cache, self._key)
            if mapped is not None:
                return mapped[0]
            raise OSError(errno.EIO, "the cached ids did not read back")
        except OSError as err:
            self.error = err
            if self._file is not None:
                self._file.close()
                self._file = None
            ids = self._read_back(path)
            with contextlib.suppress(OSError):
                path.unlink()  # ids without their index are of no use to a later open
            return ids


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
    warnings: list[str] = []
    name, label, files, documents = _documents(source, warnings)
    cache = _cache_dir()
    fingerprint_path = None
    if files is not None and cache is not None:
        fingerprint_path = cache / "index" / _fingerprint(files, encoding)
        if fingerprint_path.is_file():
            hit = _load_cached(cache, fingerprint_path.read_text().strip())
            if hit is not None:
                ids, meta = hit
                return Corpus(ids, name, label, encoding, tuple(meta.get("warnings", ())),
                              meta.get("n_chars", 0), meta.get("n_bytes", 0))
    if on_progress is not None:
        on_progress("reading", 0.0)
    if isinstance(documents, _Stream):
        key = documents.content_key(encoding, on_progress)
        total = documents.total()
        docs: list[str] | None = None
    else:
        docs = documents()
        if not docs or not any(d.strip() for d in docs):
            raise CorpusError(f"corpus {label if label != '-' else 'on stdin'} is empty:"
                              " it needs text")
        key, _ = _content_key(docs, encoding)
        total = sum(len(doc) for doc in docs)
    if on_progress is not None:
        on_progress("reading", 1.0)
    hit = _load_cached(cache, key) if cache is not None else None
    if hit is not None:
        ids, meta = hit
        if docs is None:  # the files were not read: their warnings come from the cache
            warnings = _renamed(meta, files)
    else:
        empty = f"corpus {label if label != '-' else 'on stdin'} is empty: it needs text"
        ids, meta = _tokenize_into_cache(documents if docs is None else docs, enc, cache, key,
                                         total, on_progress, warnings, empty)
    if fingerprint_path is not None and cache is not None and "cache_error" not in meta:
        try:
            fingerprint_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(fingerprint_path, key.encode())
        except OSError as err:
            meta["cache_error"] = err.strerror
    if "cache_error" in meta:
        # A read-only cache only costs speed next time; say so instead of failing.
        warnings.append(f"token cache not written ({meta['cache_error']}): the next open"
                        " re-tokenizes")
    return Corpus(ids, name, label, encoding, tuple(warnings), meta.get("n_chars", 0),
                  meta.get("n_bytes", 0))


def _renamed(meta: dict, files: list[Path] | None) -> list[str]:
    """Cached warnings, with the paths they were first read under changed to today's."""
    warnings = [str(w) for w in meta.get("warnings", ())]
    first = meta.get("files")
    if not isinstance(first, list) or files is None or len(first) != len(files):
        return warnings
    # longest first, so that a path which begins another is not replaced inside it
    for old, new in sorted(zip(first, map(str, files)), key=lambda pair: -len(pair[0])):
        warnings = [w.replace(f"{old}:", f"{new}:") for w in warnings]
    return warnings


def _tokenize_into_cache(documents: _Stream | list[str], enc, cache: Path | None, key: str,
                         total: int, on_progress: Progress | None,
                         warnings: list[str], empty: str) -> tuple[np.ndarray, dict]:
    """Tokenize the documents into the cache under key; the ids and what was counted.

    Raises CorpusError(empty) when no document holds more than whitespace.
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
        if isinstance(documents, _Stream):
            docs = (_stream_pieces(blocks, safe_break) for blocks in documents.documents())
        else:
            docs = (((piece, len(piece)) for piece in _pieces(doc, safe_break))
                    for doc in documents)
        for piece, weight in _jobs((counted(doc) for doc in docs),
                                   skip_blank=isinstance(documents, _Stream)
                                   and documents.skip_blank):
            n_docs += piece is None
            yield piece, weight

    out = _Ids(cache, key)
    try:
        _tokenize(jobs(), enc, total, on_progress, out.add)
        separators = n_docs * len("<|endoftext|>")
        # the warnings so far (reading, decoding) are the corpus's own: they go in the cache
        meta = {"warnings": list(warnings), "n_chars": n_chars + separators,
                "n_bytes": n_bytes + separators}
        if isinstance(documents, _Stream):
            meta["files"] = [str(path) for path in documents.files]
        if not has_text:
            raise CorpusError(empty)
        ids = out.finish(meta)
    except BaseException:
        out.abort()
        raise
    if out.error is not None:
        meta["cache_error"] = out.error.strerror or str(out.error)
    return ids, meta
