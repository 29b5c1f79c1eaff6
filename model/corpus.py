"""The corpus: text from files, folders, .jsonl, .parquet or stdin, tokenized once and cached."""

from __future__ import annotations

import codecs
import hashlib
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder where a file was expected") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None


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


def _jsonl_docs(path: Path, data: bytes, warnings: list[str]) -> list[str]:
    docs, broken = [], 0
    lines = [line for line in data.splitlines() if line.strip()]
    for line in lines:
        try:
            record = json.loads(line)
            text = record["text"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            broken += 1
            continue
        docs.append(text)
    if broken:
        warnings.append(f"{path}: skipped {broken} of {len(lines)} lines without valid JSON text")
    if not docs:
        raise CorpusError(f'no line of {path} is JSON with a "text" string field')
    return docs


def _parquet_docs(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError("reading .parquet needs pyarrow: pip install 'nnio-tui[parquet]'") from None
    try:
        schema = pq.read_schema(path)
        if "text" not in schema.names:
            raise CorpusError(f"{path} has no 'text' column (columns: {', '.join(schema.names)})")
        column = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except CorpusError:
        raise
    except Exception as err:  # pyarrow raises many types for a damaged file
        raise CorpusError(f"cannot read {path} as parquet: {err}") from None
    return [t for t in column if isinstance(t, str)]


def _documents(source: str | Path | None, warnings: list[str]) -> tuple[str, str, list[Path] | None,
                                                                       Callable[[], list[str]]]:
    """Name, source label, files to fingerprint (None for stdin) and a reader of the documents."""
    if source is None:
        folder = sample_corpus_path()
        files = _folder_files(folder)
        return corpus_name(None), "<sample>", files, lambda: _read_files(files, warnings)
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
        return name, label, files, lambda: _read_files(files, warnings)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return name, label, [path], lambda: _jsonl_docs(path, _read(path), warnings)
    if suffix == ".parquet":
        return name, label, [path], lambda: _parquet_docs(path)
    return name, label, [path], lambda: _read_files([path], warnings, strict=True)


def _read_files(files: list[Path], warnings: list[str], strict: bool = False) -> list[str]:
    docs = []
    for path in files:
        data = _read(path)
        if not _utf16_bom(data) and _is_binary(data):
            if strict:
                raise CorpusError(f"{path} looks like a binary file, not text: name a text file")
            warnings.append(f"{path}: skipped, it looks binary")
            continue
        if data.strip():
            docs.append(_decode(data, str(path), warnings))
    return docs


def _pieces(text: str, safe_break: re.Pattern) -> Iterator[str]:
    start = 0
    while len(text) - start > PIECE_CHARS:
        found = safe_break.search(text, start + PIECE_CHARS)
        if found is None:
            break
        yield text[start : found.end()]
        start = found.end()
    yield text[start:]


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
    safe_break = _SAFE_BREAK_GPT2 if enc.name in ("gpt2", "r50k_base", "p50k_base") else _SAFE_BREAK
    total = sum(len(doc) for doc in docs) or 1
    eot = np.array([enc.eot_token], dtype=np.uint32)

    def jobs() -> Iterator[str | None]:  # None marks a document boundary
        for i, doc in enumerate(docs):
            if i:
                yield None
            yield from _pieces(doc, safe_break)

    def encode(piece: str | None) -> np.ndarray:
        return eot if piece is None else np.array(enc.encode_ordinary(piece), dtype=np.uint32)

    workers = os.cpu_count() or 1
    parts: list[np.ndarray] = []
    pending: deque[tuple[int, Future]] = deque()
    done = 0

    def collect() -> None:
        nonlocal done
        size, future = pending.popleft()
        parts.append(future.result())
        done += size
        if on_progress is not None:
            on_progress("tokenizing", done / total)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for piece in jobs():
                pending.append((len(piece) if piece else 0, pool.submit(encode, piece)))
                if len(pending) >= 2 * workers:
                    collect()
            while pending:
                collect()
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
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


def _atomic_write(path: Path, data: bytes | list[np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, list):
                for part in data:
                    part.astype("<u4", copy=False).tofile(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or Ctrl+C leaves no half file behind
        raise


def _store(cache: Path, key: str, parts: list[np.ndarray], meta: dict) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    _atomic_write(cache / f"{key}.u32", parts)
    meta = {**meta, "n_tokens": sum(int(p.shape[0]) for p in parts), "version": CACHE_VERSION}
    _atomic_write(cache / f"{key}.json", json.dumps(meta).encode())


def open_corpus(
    source: str | Path | None,
    enc,
    encoding_name: str | None = None,
    on_progress: Progress | None = None,
) -> Corpus:
    """Read and tokenize a corpus, or map its cached ids.

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
    name, label, files, read_docs = _documents(source, warnings)
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
    docs = read_docs()
    if on_progress is not None:
        on_progress("reading", 1.0)
    if not docs or not any(d.strip() for d in docs):
        raise CorpusError(f"corpus {label if label != '-' else 'on stdin'} is empty: it needs text")
    key, n_bytes = _content_key(docs, encoding)
    n_chars = sum(len(d) for d in docs) + (len(docs) - 1) * len("<|endoftext|>")
    n_bytes += (len(docs) - 1) * len("<|endoftext|>")
    meta = {"warnings": warnings, "n_chars": n_chars, "n_bytes": n_bytes}
    hit = _load_cached(cache, key) if cache is not None else None
    ids = hit[0] if hit is not None else None
    if ids is None:
        parts = tokenize_pieces(docs, enc, on_progress)
        del docs  # the text is not needed any more: only the ids are
    if cache is not None:
        try:
            if ids is None:
                # written part by part and mapped back, so the parts are never joined in memory
                _store(cache, key, parts, meta)
                mapped = _load_cached(cache, key)
                ids = mapped[0] if mapped is not None else None
            if fingerprint_path is not None:
                fingerprint_path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(fingerprint_path, key.encode())
        except OSError as err:
            # A read-only cache only costs speed next time; say so instead of failing.
            warnings.append(f"token cache not written ({err.strerror}): the next open re-tokenizes")
    if ids is None:  # no cache to map from
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    return Corpus(ids, name, label, encoding, tuple(warnings), n_chars, n_bytes)
