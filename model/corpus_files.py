"""Reading corpus files a little at a time: text files, .jsonl records, .parquet rows.

Nothing here holds a whole file: a multi-gigabyte corpus goes through in blocks.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from model.errors import CorpusError
from model.token_cache import CACHE_VERSION

TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".org", ".tex", ".py", ".csv", ".tsv", ".html"}

Progress = Callable[[str, float], None]


def _is_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return bool(head) and controls / len(head) > 0.1


def _utf16_bom(data: bytes) -> bool:
    """Windows editors save "Unicode" text as UTF-16 with a byte-order mark (full of NULs)."""
    return data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def decode_whole(data: bytes, label: str, warnings: list[str]) -> str:
    # utf-8-sig and utf-16 drop the byte-order mark, which would otherwise become a token
    codec = "utf-16" if _utf16_bom(data) else "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        text = data.decode(codec, errors="replace")
        warnings.append(f"{label}: invalid {codec.upper().removesuffix('-SIG')} bytes were"
                        " replaced with U+FFFD")
        return text


def folder_files(folder: Path) -> list[Path]:
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


class Stream:
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


class TextFiles(Stream):
    """Text files, each one document, read a block at a time."""

    give_text = "name a text file"  # what a strict reader asks for instead of binary bytes

    def __init__(self, files: list[Path], warnings: list[str], strict: bool = False) -> None:
        super().__init__(files, warnings)
        self.strict = strict

    def shown(self, path: Path) -> str:
        """How messages name a file."""
        return str(path)

    def documents(self) -> Iterator[Iterator[tuple[str, int]]]:
        """Each readable text file as (text, bytes read for it) blocks; binary ones skipped."""
        for path in self.files:
            blocks = _blocks(path)
            head = next(blocks, b"")
            if not _utf16_bom(head) and _is_binary(head):
                if self.strict:
                    raise CorpusError(f"{self.shown(path)} looks like a binary file, not text:"
                                      f" {self.give_text}")
                self.warnings.append(f"{self.shown(path)}: skipped, it looks binary")
                continue
            yield _decoded(self.shown(path), head, blocks, self.warnings)


class StdinText(TextFiles):
    """Standard input, first copied to a file a block at a time (spool_stdin), then read as
    one text file: the copy is hashed and tokenized like any other, and is never in memory."""

    kind = "stdin"
    give_text = "pipe text into it"

    def __init__(self, spool: Path, warnings: list[str]) -> None:
        super().__init__([spool], warnings, strict=True)

    def shown(self, path: Path) -> str:
        return "stdin"


def spool_stdin(folders: list[Path], source: BinaryIO) -> Path:
    """Copy source to a new hidden file in the first of folders that takes one; its path.

    The caller deletes the file. A pipe can be read only once, and the token cache's key
    must be made before its ids are stored under it.
    """
    errors = []
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_spools(folder)
            # the pid in the name tells a later run whether this copy's owner is gone
            fd, name = tempfile.mkstemp(prefix=f".stdin-{os.getpid()}-", suffix=".txt",
                                        dir=folder)
        except OSError as err:
            errors.append(err)
            continue
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := source.read(READ_BYTES):
                    out.write(block)
        except OSError as err:
            path.unlink(missing_ok=True)
            raise CorpusError(f"cannot keep the text from stdin in {folder}: {err.strerror};"
                              " save it to a file and name that instead") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    why = errors[-1].strerror if errors else "no folder to keep it in"
    raise CorpusError(f"cannot keep the text from stdin ({why}): save it to a file and name"
                      " that instead")


# a copy this old whose process is gone was left by a kill; younger ones may belong to a
# process of another pid namespace (a container) that shares the folder
ABANDONED_SPOOL_S = 600


def _remove_abandoned_spools(folder: Path) -> None:
    """Delete stdin copies left behind by a process that was killed before its cleanup."""
    if os.name != "posix":  # elsewhere os.kill(pid, 0) would end the process, not ask
        return
    for path in folder.glob(".stdin-*-*.txt"):
        pid = path.name.split("-")[1]
        try:
            if (not pid.isdigit() or not 0 < int(pid) < 2**31
                    or time.time() - path.stat().st_mtime < ABANDONED_SPOOL_S):
                continue
            os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except OSError:  # another user's process, or the file went: leave it
            continue


class JsonLines(Stream):
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


class ParquetRows(Stream):
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


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file's open and reads, with what goes wrong said in one line."""
    try:
        yield
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder where a file was expected") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}") from None


def _lines(path: Path) -> Iterator[bytes]:
    with _reading(path), open(path, "rb") as f:
        yield from f


READ_BYTES = 1 << 22  # a block of a text file read at a time


def _blocks(path: Path) -> Iterator[bytes]:
    with _reading(path), open(path, "rb") as f:
        while block := f.read(READ_BYTES):
            yield block


_FFFD = "\ufffd".encode()


def _decoded(shown: str, head: bytes, rest: Iterator[bytes],
             warnings: list[str]) -> Iterator[tuple[str, int]]:
    """A file's text a block at a time, as decode_whole would give it whole; shown names
    the file in warnings."""
    if _utf16_bom(head):  # rare, and never big: decoded whole, as before
        data = head + b"".join(rest)
        yield decode_whole(data, shown, warnings), len(data)
        return
    # The byte-order mark is dropped here, not by a utf-8-sig decoder: that one, given only
    # the first bytes of a mark (a file of b"\xef"), returns nothing at all, not U+FFFD.
    bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # Replacements show as U+FFFD beyond those the bytes spell themselves.
    spelled = replaced = 0
    tail = b""
    for block in itertools.chain((head[bom:],), rest):
        text = decoder.decode(block)
        spelled += (tail + block).count(_FFFD)  # one split across blocks is counted once
        tail = (tail + block)[-2:]
        replaced += text.count("\ufffd")
        yield text, len(block) + bom
        bom = 0
    text = decoder.decode(b"", final=True)
    replaced += text.count("\ufffd")
    if text:
        yield text, 0
    if replaced > spelled:
        warnings.append(f"{shown}: invalid UTF-8 bytes were replaced with U+FFFD")


