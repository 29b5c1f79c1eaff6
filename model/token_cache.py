"""The on-disk token cache: a corpus's ids under a key of its content, found again by a
fingerprint of its files, written as they come and memory-mapped when read."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from model.errors import CorpusError

CACHE_VERSION = 2  # 2: byte-order marks are dropped; file keys hold inode and ctime


def cache_dir() -> Path | None:
    """Where token ids are cached; None when NNIO_TUI_CACHE_DIR is set empty (no cache)."""
    if "NNIO_TUI_CACHE_DIR" in os.environ:
        base = os.environ["NNIO_TUI_CACHE_DIR"]
        return Path(base) / "tokens" if base else None
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnio-tui")) / "tokens"


def fingerprint(files: list[Path], encoding: str) -> str:
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


def load_cached(cache: Path, key: str) -> tuple[np.ndarray, dict] | None:
    ids_path, meta_path = cache / f"{key}.u32", cache / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if ids_path.stat().st_size != 4 * meta["n_tokens"] or meta["n_tokens"] == 0:
            return None
        return np.memmap(ids_path, dtype=np.uint32, mode="r"), meta
    except (OSError, ValueError, KeyError):
        return None


def atomic_write(path: Path, data: bytes) -> None:
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


def write_part(f, part: np.ndarray) -> None:
    part.astype("<u4", copy=False).tofile(f)


class IdsWriter:
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
                write_part(self._file, part)
                self.n_tokens += int(part.shape[0])
                return
            except OSError as err:
                self._fail(err)
        self._parts.append(part)
        self.n_tokens += int(part.shape[0])

    def _fail(self, err: OSError) -> None:
        """Go on in memory with what reached the file so far (a full disk, a read-only cache)."""
        self.error = err
        self._to_memory()

    def _close(self) -> bool:
        """Close the cache file; whether one was open."""
        if self._file is None:
            return False
        self._file.close()
        self._file = None
        return True

    def _to_memory(self) -> None:
        if self._close():
            self._parts = [self._read_back(self._tmp)]
        self._discard()

    def in_memory(self) -> np.ndarray:
        """All the ids, joined in memory, with nothing left in the cache: for ids that the
        key does not describe (the files changed while they were read)."""
        self._to_memory()
        return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.uint32)

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
        self._close()
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
            self._close()
            os.replace(self._tmp, ids_path)
            path = ids_path
            meta = {**meta, "n_tokens": self.n_tokens, "version": CACHE_VERSION}
            atomic_write(self._cache / f"{self._key}.json", json.dumps(meta).encode())
            mapped = load_cached(self._cache, self._key)
            if mapped is not None:
                return mapped[0]
            raise OSError(errno.EIO, "the cached ids did not read back")
        except OSError as err:
            self.error = err
            self._close()
            ids = self._read_back(path)
            with contextlib.suppress(OSError):
                path.unlink()  # ids without their index are of no use to a later open
            return ids


def renamed_warnings(meta: dict, files: list[Path] | None) -> list[str]:
    """Cached warnings, with the paths they were first read under changed to today's."""
    warnings = [str(w) for w in meta.get("warnings", ())]
    first = meta.get("files")
    if not isinstance(first, list) or files is None or len(first) != len(files):
        return warnings
    # longest first, so that a path which begins another is not replaced inside it
    for old, new in sorted(zip(first, map(str, files)), key=lambda pair: -len(pair[0])):
        warnings = [w.replace(f"{old}:", f"{new}:") for w in warnings]
    return warnings


