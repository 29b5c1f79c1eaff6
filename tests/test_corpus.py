"""Corpus reading, tokenizing in parallel pieces, and the on-disk id cache."""

import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import corpus as corpus_mod
from model import corpus_files, token_cache
from model.corpus import open_corpus, sample_corpus_path, tokenize_documents
from model.errors import CorpusError
from model.vocab import load_encoding

ENC = load_encoding()


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_pieces_give_the_same_ids_as_one_whole_encode(monkeypatch):
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 2_000)
    text = "".join(p.read_text() for p in sorted(sample_corpus_path().glob("*.txt")))[:200_000]
    ids = tokenize_documents([text], ENC)
    assert ids.tolist() == ENC.encode_ordinary(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab .,\n\t1é한👋")), max_size=80),
                max_size=30))
def test_any_newline_split_keeps_the_ids(lines):
    corpus_mod.PIECE_CHARS, saved = 16, corpus_mod.PIECE_CHARS
    try:
        text = "\n".join(lines)
        assert tokenize_documents([text], ENC).tolist() == ENC.encode_ordinary(text)
    finally:
        corpus_mod.PIECE_CHARS = saved


def test_folder_documents_are_joined_by_end_of_text(tmp_path):
    _write(tmp_path / "b.txt", "second file")
    _write(tmp_path / "a.md", "first file")
    _write(tmp_path / "skip.bin", "not text by suffix")
    c = open_corpus(tmp_path, ENC)
    expected = ENC.encode_ordinary("first file") + [ENC.eot_token] + ENC.encode_ordinary(
        "second file")
    assert c.ids.tolist() == expected


def test_spelled_special_token_is_ordinary_text(tmp_path):
    c = open_corpus(_write(tmp_path / "s.txt", "x <|endoftext|> y"), ENC)
    assert ENC.eot_token not in c.ids.tolist()


def test_second_open_maps_the_cache_without_tokenizing(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.txt", "cache me " * 100)
    first = open_corpus(path, ENC)

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(corpus_mod, "_tokenize", fail)
    second = open_corpus(path, ENC)
    assert isinstance(second.ids, np.memmap)
    assert second.ids.tolist() == first.ids.tolist()


def test_an_empty_cache_dir_setting_turns_the_cache_off(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.txt", "no cache here " * 50)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNIO_TUI_CACHE_DIR", "")
    calls = []
    real = corpus_mod._tokenize
    monkeypatch.setattr(corpus_mod, "_tokenize", lambda *a, **k: calls.append(1) or real(*a, **k))
    first, second = open_corpus(path, ENC), open_corpus(path, ENC)
    assert len(calls) == 2 and not isinstance(second.ids, np.memmap)
    assert second.ids.tolist() == first.ids.tolist() == ENC.encode_ordinary("no cache here " * 50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]  # nothing cached anywhere
    assert not first.warnings


def test_changed_content_is_tokenized_again(tmp_path):
    path = _write(tmp_path / "c.txt", "one two three")
    open_corpus(path, ENC)
    _write(path, "four five six seven")
    assert open_corpus(path, ENC).ids.tolist() == ENC.encode_ordinary("four five six seven")


def test_a_copy_that_keeps_size_and_mtime_is_tokenized_again(tmp_path):
    path = _write(tmp_path / "c.txt", "one two three")
    open_corpus(path, ENC)
    stamp = path.stat()
    _write(tmp_path / "new.txt", "six six seven")  # the same size, as `cp -p` would bring it
    (tmp_path / "new.txt").replace(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    assert open_corpus(path, ENC).ids.tolist() == ENC.encode_ordinary("six six seven")


def test_jsonl_skips_and_counts_broken_lines(tmp_path):
    lines = [json.dumps({"text": "good one"}), "{broken", json.dumps({"title": "no text"}),
             json.dumps({"text": "good two"})]
    c = open_corpus(_write(tmp_path / "d.jsonl", "\n".join(lines)), ENC)
    assert c.ids.tolist().count(ENC.eot_token) == 1
    assert any("skipped 2 of 4 lines" in w for w in c.warnings)


def test_parquet_needs_a_text_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["alpha beta", "gamma"]}), good)
    pq.write_table(pa.table({"body": ["alpha"]}), bad)
    assert open_corpus(good, ENC).ids.tolist().count(ENC.eot_token) == 1
    with pytest.raises(CorpusError, match="no 'text' column \\(columns: body\\)"):
        open_corpus(bad, ENC)


def test_invalid_utf8_is_replaced_and_said(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9 au lait")
    c = open_corpus(path, ENC)
    assert c.ids.tolist() == ENC.encode_ordinary("caf\ufffd au lait")
    assert any("invalid UTF-8" in w for w in c.warnings)


@pytest.mark.parametrize("data", [b"\xef", b"\xef\xbb", b"\xef\xbbx", b"x\xef"])
def test_the_first_bytes_of_a_byte_order_mark_alone_are_invalid_text(tmp_path, data):
    # not a mark to drop: Python's utf-8-sig decoder, fed them a block at a time, gave nothing
    (tmp_path / "f.txt").write_bytes(data)
    c = open_corpus(tmp_path / "f.txt", ENC)
    assert c.ids.tolist() == ENC.encode_ordinary(data.decode("utf-8", errors="replace"))
    assert any("invalid UTF-8" in w for w in c.warnings)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be"])
def test_text_saved_with_a_byte_order_mark_reads_as_its_text(tmp_path, encoding):
    text = "Notepad saves café text like this.\n"
    bom = {"utf-8-sig": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    (tmp_path / "win.txt").write_bytes(bom + text.encode(encoding))
    c = open_corpus(tmp_path / "win.txt", ENC)
    assert c.ids.tolist() == ENC.encode_ordinary(text) and not c.warnings


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.txt", "corpus not found"),
    (lambda p: _write(p / "empty.txt", ""), "is empty"),
    (lambda p: (p / "bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00") and p / "bin.txt",
     "looks like a binary file"),
    (lambda p: (p / "sub").mkdir() or p / "sub", "no text files in folder"),
])
def test_bad_sources_give_one_clear_line(tmp_path, make, message):
    with pytest.raises(CorpusError, match=message) as info:
        open_corpus(make(tmp_path), ENC)
    assert "\n" not in str(info.value)


def test_short_corpus_offers_a_shorter_context(tmp_path):
    c = open_corpus(_write(tmp_path / "s.txt", "word " * 100), ENC)
    assert c.split == c.n_tokens - c.n_tokens // 10
    with pytest.raises(CorpusError, match="use --block-size 9"):
        c.check_fits(64)
    c.check_fits(8)


def test_bundled_sample_is_large_enough_to_learn_from():
    c = open_corpus(None, ENC)
    assert c.name == "sample_data"
    assert c.n_bytes >= 150_000


def test_a_single_long_line_is_split_and_keeps_its_ids(monkeypatch):
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 100)
    text = ("one line with no newline at all, " * 40).strip()
    assert len(list(corpus_mod._pieces(text, corpus_mod._SAFE_BREAK))) > 5
    assert tokenize_documents([text], ENC).tolist() == ENC.encode_ordinary(text)


def test_a_progress_callback_that_raises_stops_the_tokenizing(monkeypatch):
    # the app raises from its progress callback to end an open when it is closing; the
    # pieces still queued must not be tokenized after that (Executor.map's results
    # iterator cancels them when it is dropped; collecting them first would not)
    enc = load_encoding()
    encoded: list[str] = []

    class Counting:
        name, eot_token = enc.name, enc.eot_token

        def encode_ordinary(self, text):
            if text not in docs[:3]:
                # later batches are slow: the second (and maybe the third) is still running
                # when the first one's progress stops the open, and the fourth waits for a
                # free thread, so only a cancel keeps it from running
                time.sleep(0.3)
            encoded.append(text)
            return enc.encode_ordinary(text)

    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 200)  # three documents a batch
    monkeypatch.setattr(corpus_mod.os, "cpu_count", lambda: 2)  # 2 threads, 4 batches queued
    docs = [f"Document {i} says hello.\n" * 3 for i in range(2000)]

    def stop(what, fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokenize_documents(docs, Counting(), stop)
    assert docs[0] in encoded and set(encoded) <= set(docs[:9])  # batches of 3; not the 4th


def test_pieces_are_cut_a_few_at_a_time_not_all_at_once(monkeypatch):
    # a whole list of pieces would hold a second copy of the text (bench/README.md, figure 6)
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 1000)
    real_pieces, cut, ahead = corpus_mod._pieces, [0], []

    def counted(text, safe_break):
        for piece in real_pieces(text, safe_break):
            cut[0] += 1
            yield piece

    monkeypatch.setattr(corpus_mod, "_pieces", counted)

    def progress(what, fraction):
        ahead.append(cut[0] - len(ahead) - 1)  # pieces cut but not yet collected

    text = "The lamp room had a hundred and twelve steps.\n" * 4000
    ids = np.concatenate(corpus_mod.tokenize_pieces([text], ENC, progress))
    assert ids.tolist() == ENC.encode_ordinary(text)
    assert len(ahead) == cut[0] > 150 and max(ahead) <= 2 * (os.cpu_count() or 1)


_STREAMED = [0]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .,\n\t1é한👋\ufffd")), max_size=400),
       st.integers(1, 9))
def test_a_file_read_a_few_bytes_at_a_time_gives_the_ids_of_one_whole_encode(text, block):
    # blocks cut UTF-8 sequences and the patterns' look-ahead apart; pieces cut the text
    saved = corpus_mod.PIECE_CHARS, corpus_files.READ_BYTES
    corpus_mod.PIECE_CHARS, corpus_files.READ_BYTES = 16, block
    try:
        _STREAMED[0] += 1
        folder = token_cache.cache_dir().parent.parent / "streamed"  # the test's own home
        folder.mkdir(parents=True, exist_ok=True)
        path = _write(folder / f"{_STREAMED[0]}.txt", text)
        if not text.strip():
            with pytest.raises(CorpusError, match="holds only whitespace" if text else "is empty"):
                open_corpus(path, ENC)
            return
        c = open_corpus(path, ENC)
        assert c.ids.tolist() == ENC.encode_ordinary(text) and not c.warnings
        assert c.n_bytes == len(text.encode()) and c.n_chars == len(text)
    finally:
        corpus_mod.PIECE_CHARS, corpus_files.READ_BYTES = saved


def test_invalid_utf8_across_blocks_is_said_and_a_spelled_replacement_is_not(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(corpus_files, "READ_BYTES", 2)  # every U+FFFD is split across blocks
    spelled = _write(tmp_path / "spelled.txt", "a \ufffd sign, twice \ufffd")
    c = open_corpus(spelled, ENC)
    assert c.ids.tolist() == ENC.encode_ordinary("a \ufffd sign, twice \ufffd") and not c.warnings
    broken = tmp_path / "broken.txt"
    broken.write_bytes("a \ufffd sign ".encode() + b"caf\xe9 \xe2\x82")
    c = open_corpus(broken, ENC)
    assert c.ids.tolist() == ENC.encode_ordinary("a \ufffd sign caf\ufffd \ufffd")
    assert c.warnings == (f"{broken}: invalid UTF-8 bytes were replaced with U+FFFD",)


def test_blank_files_in_a_folder_add_no_document(tmp_path):
    _write(tmp_path / "a.txt", "first file")
    _write(tmp_path / "b.txt", "  \n\t \n")
    _write(tmp_path / "c.txt", "")
    _write(tmp_path / "d.txt", "\n\nlast file")
    c = open_corpus(tmp_path, ENC)
    assert c.ids.tolist() == (ENC.encode_ordinary("first file") + [ENC.eot_token]
                              + ENC.encode_ordinary("\n\nlast file"))


def test_a_big_file_streams_its_text_in_and_its_ids_out(tmp_path, monkeypatch):
    # bench/README.md, figure 6: neither the whole text nor all the ids are ever in memory
    monkeypatch.setattr(corpus_files, "READ_BYTES", 4096)
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 1000)
    text = "The lamp room had a hundred and twelve steps.\n" * 20000
    path = _write(tmp_path / "big.txt", text)
    cache = token_cache.cache_dir()
    longest, on_disk = [0], []

    class Watching:
        name, eot_token = ENC.name, ENC.eot_token

        def encode_ordinary(self, piece):
            longest[0] = max(longest[0], len(piece))
            on_disk.append(sum(p.stat().st_size for p in cache.glob(".*.tmp")))
            return ENC.encode_ordinary(piece)

    c = open_corpus(path, Watching())
    assert c.ids.tolist() == ENC.encode_ordinary(text) and isinstance(c.ids, np.memmap)
    assert longest[0] <= 1000 + 4096 < len(text) // 50
    # by the last pieces, the ids of the earlier ones are in the cache file, not in memory
    assert on_disk[-1] > 0.8 * 4 * c.n_tokens
    assert not list(cache.glob(".*.tmp"))


def test_a_cache_that_fills_up_midway_keeps_every_id_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 1000)
    text = "Seven gulls sat on the harbour wall.\n" * 3000
    path = _write(tmp_path / "c.txt", text)
    real_write, writes = token_cache.write_part, [0]

    def fills_up(f, part):
        writes[0] += 1
        if writes[0] > 5:
            raise OSError(28, "No space left on device")
        real_write(f, part)

    monkeypatch.setattr(token_cache, "write_part", fills_up)
    c = open_corpus(path, ENC)
    assert writes[0] == 6 and c.ids.tolist() == ENC.encode_ordinary(text)  # 5 parts on disk
    said = "token cache not written (No space left on device): the next open re-tokenizes"
    assert c.warnings == (said,)
    cache = token_cache.cache_dir()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no half file, no index
    monkeypatch.setattr(token_cache, "write_part", real_write)
    again = open_corpus(path, ENC)
    assert again.ids.tolist() == c.ids.tolist() and not again.warnings


def test_a_copy_maps_the_cached_ids_and_names_itself_in_the_warnings(tmp_path, monkeypatch):
    first = tmp_path / "first.txt"
    first.write_bytes(b"caf\xe9 au lait, " * 50)
    original = open_corpus(first, ENC)
    copy = tmp_path / "copy.txt"
    copy.write_bytes(first.read_bytes())

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(corpus_mod, "_tokenize", fail)
    c = open_corpus(copy, ENC)
    assert isinstance(c.ids, np.memmap) and c.ids.tolist() == original.ids.tolist()
    assert c.warnings == (f"{copy}: invalid UTF-8 bytes were replaced with U+FFFD",)
    assert (c.n_chars, c.n_bytes) == (original.n_chars, original.n_bytes)


def test_jsonl_streams_its_records_as_the_whole_list_would_give_them(tmp_path):
    texts = [f"Record {i} tells of the tide." if i % 7 else "" for i in range(3000)]
    lines = [json.dumps({"text": t}) for t in texts]
    lines[10] = "{broken"
    del texts[10]
    path = tmp_path / "d.jsonl"
    # a bare \r between records is a line break too, as bytes.splitlines has it
    path.write_bytes(("\n".join(lines[:2000]) + "\r" + "\r\n".join(lines[2000:])).encode())
    c = open_corpus(path, ENC)
    assert c.ids.tolist() == tokenize_documents(texts, ENC).tolist()
    assert c.warnings == (f"{path}: skipped 1 of 3000 lines without valid JSON text",)


@pytest.mark.parametrize("text, message", [
    ("", "corpus e.txt is empty: it needs text"),
    (" \n\t\n", "corpus e.txt holds only whitespace: it needs text"),  # not called empty
])
def test_a_file_without_text_is_named_as_typed(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "e.txt", text)
    with pytest.raises(CorpusError) as err:
        open_corpus("e.txt", ENC)
    assert str(err.value) == message


def test_jsonl_of_blank_texts_has_no_text(tmp_path):
    path = _write(tmp_path / "d.jsonl", "\n".join(json.dumps({"text": t}) for t in ["", " \n"]))
    with pytest.raises(CorpusError, match="holds only whitespace: it needs text"):
        open_corpus(path, ENC)
    path = _write(tmp_path / "e.jsonl", "\n".join(json.dumps({"text": ""}) for _ in range(3)))
    with pytest.raises(CorpusError, match="is empty: it needs text"):
        open_corpus(path, ENC)


def test_parquet_streams_its_rows_in_batches(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    texts = [None if i % 11 == 0 else f"Row {i} of the ledger." for i in range(2500)]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": texts, "n": list(range(2500))}), path, row_group_size=700)
    c = open_corpus(path, ENC)
    assert c.ids.tolist() == tokenize_documents([t for t in texts if t is not None], ENC).tolist()


def test_a_file_that_changes_while_it_is_read_is_said_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 1000)
    path = _write(tmp_path / "log.txt", "The first version of the log.\n" * 200)

    class Appending:  # another program writes the file while it is tokenized
        name, eot_token = ENC.name, ENC.eot_token

        def encode_ordinary(self, piece):
            with open(path, "a", encoding="utf-8") as f:
                f.write("A later line.\n")
            return ENC.encode_ordinary(piece)

    c = open_corpus(path, Appending())
    said = (f"{path} changed while it was read, so its tokens may mix old and new text: open"
            " it again once it is written")
    assert c.warnings == (said,)
    cache = token_cache.cache_dir()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing names these ids
    again = open_corpus(path, ENC)
    assert again.ids.tolist() == ENC.encode_ordinary(path.read_text()) and not again.warnings


class _Pipe(io.RawIOBase):
    """stdin as a pipe: read once, and only in sized reads (a whole read() would hold it all)."""

    def __init__(self, data: bytes):
        self._data, self.reads = io.BytesIO(data), []

    def readable(self):
        return True

    def read(self, size=-1):
        assert size is not None and size > 0, "stdin read whole"
        self.reads.append(size)
        return self._data.read(size)


def _pipe_stdin(monkeypatch, data: bytes) -> _Pipe:
    pipe = _Pipe(data)
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=pipe))
    return pipe


def _spools(*folders):
    return [p for folder in folders if folder.exists() for p in folder.glob(".stdin-*")]


def test_stdin_is_read_a_block_at_a_time_then_cached_and_its_copy_deleted(monkeypatch):
    monkeypatch.setattr(corpus_files, "READ_BYTES", 4096)
    text = "Gulls circled the lamp room. Ships passed at dawn.\n" * 400  # ~20 KB
    pipe = _pipe_stdin(monkeypatch, text.encode())
    first = open_corpus("-", ENC)
    assert first.ids.tolist() == ENC.encode_ordinary(text)
    assert len(pipe.reads) > 4 and max(pipe.reads) == 4096
    assert (first.source, first.name, first.warnings) == ("-", "stdin", ())
    cache = token_cache.cache_dir()
    assert _spools(cache, Path(tempfile.gettempdir())) == []

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(corpus_mod, "_tokenize", fail)
    _pipe_stdin(monkeypatch, text.encode())
    second = open_corpus("-", ENC)  # the same text again: its cached ids
    assert isinstance(second.ids, np.memmap) and second.ids.tolist() == first.ids.tolist()
    assert _spools(cache) == []


def test_a_stdin_copy_left_by_a_killed_run_is_removed_by_the_next(monkeypatch):
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid whose process has ended
    dead.wait()
    cache = token_cache.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    old = time.time() - corpus_files.ABANDONED_SPOOL_S - 60
    left = {name: cache / name for name in (
        f".stdin-{dead.pid}-abandoned.txt", f".stdin-{dead.pid}-young.txt",
        f".stdin-{os.getpid()}-alive.txt", ".stdin-notapid.txt")}
    for name, path in left.items():
        path.write_text("x")
        if "young" not in name:
            os.utime(path, (old, old))
    _pipe_stdin(monkeypatch, b"one two three")
    open_corpus("-", ENC)
    assert sorted(p.name for p in _spools(cache)) == sorted(
        name for name in left if "abandoned" not in name)


def test_stdin_that_is_binary_empty_or_broken_utf8_is_said_to_be(monkeypatch):
    _pipe_stdin(monkeypatch, b"\x00\x01\x02ELF" * 100)
    with pytest.raises(CorpusError, match="^stdin looks like a binary file, not text: pipe text"):
        open_corpus("-", ENC)
    _pipe_stdin(monkeypatch, b" \n\t\n")
    with pytest.raises(CorpusError, match="^corpus on stdin holds only whitespace"):
        open_corpus("-", ENC)
    _pipe_stdin(monkeypatch, b"")
    with pytest.raises(CorpusError, match="^corpus on stdin is empty"):
        open_corpus("-", ENC)
    _pipe_stdin(monkeypatch, b"caf\xe9 au lait")
    c = open_corpus("-", ENC)
    assert c.warnings == ("stdin: invalid UTF-8 bytes were replaced with U+FFFD",)
    assert c.ids.tolist() == ENC.encode_ordinary("caf\ufffd au lait")
    assert _spools(token_cache.cache_dir(), Path(tempfile.gettempdir())) == []


def test_stdin_goes_to_the_temp_folder_when_the_cache_takes_no_file(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    monkeypatch.setenv("NNIO_TUI_CACHE_DIR", str(blocked))  # its tokens/ cannot be made
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    _pipe_stdin(monkeypatch, b"one two three")
    c = open_corpus("-", ENC)
    assert c.ids.tolist() == ENC.encode_ordinary("one two three")
    assert any("token cache not written" in w for w in c.warnings)
    assert _spools(tmp_path / "tmp") == []
    # and nowhere at all: one line, not a traceback
    monkeypatch.setattr(tempfile, "tempdir", str(blocked / "tmp"))
    _pipe_stdin(monkeypatch, b"one two three")
    with pytest.raises(CorpusError, match=r"^cannot keep the text from stdin \(.*\): save it"):
        open_corpus("-", ENC)
