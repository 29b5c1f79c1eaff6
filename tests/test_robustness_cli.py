"""Bad input to `nnio-tui train` and the app's start-up: a one-line message, exit code 2, and
never a traceback. The real command runs in a subprocess for each kind of failure; the wider
matrix runs the same entry point in-process, which is ten times faster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import corpus as corpus_mod
from model.api import ConfigError, CorpusError, tokenize_source
from model.vocab import load_encoding
from nnio_tui import cli, commands

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "tiny", "--device", "cpu"]


def run(*argv: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    # stdin closed and no terminal: an app that wrongly got as far as its UI ends at once
    return subprocess.run([*prefix, sys.executable, "-m", "nnio_tui", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def fails(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CORPORA = {
    "missing": (lambda p: p / "missing.txt", "corpus not found: {path} (check the path)"),
    "empty": (lambda p: _write(p / "e.txt", b""), "corpus {path} is empty: it needs text"),
    "binary": (lambda p: _write(p / "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00" * 50),
               "{path} looks like a binary file, not text: name a text file"),
    "folder without text": (lambda p: (p / "d").mkdir() or _write(p / "d" / "x.bin", b"1") and
                            p / "d", "no text files in folder {path} (looking for .csv"),
    "too short": (lambda p: _write(p / "s.txt", b"word " * 100),
                  "corpus s.txt has 101 tokens, too short for a context of 16 plus its label in"
                  " both splits: use --block-size 9 or a longer corpus"),
    "tiny": (lambda p: _write(p / "t.txt", b"hi"),
             "corpus t.txt has 1 token, too short for the model's context of 16 plus its label:"
             " use a corpus of at least 170 tokens (a tenth is kept for validation)"),
    "jsonl without text": (lambda p: _write(p / "d.jsonl", b'{"title": 1}\n{oops\n'),
                           'no line of {path} is JSON with a "text" string field'),
}


@pytest.mark.parametrize("case", sorted(CORPORA))
def test_bad_corpus_for_train(tmp_path, capsys, case):
    make, message = CORPORA[case]
    path = make(tmp_path)
    line = fails(["train", str(path), "--steps", "1", *TINY], capsys)
    assert message.format(path=path) in line


@pytest.mark.parametrize("case", ["binary", "too short"])
def test_bad_corpus_through_the_real_command(tmp_path, case):
    make, message = CORPORA[case]
    path = make(tmp_path)
    assert message.format(path=path) in one_line(run("train", str(path), "--steps", "1", *TINY))


def test_parquet_without_a_text_column(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"body": ["alpha"], "id": [1]}), path)
    line = fails(["train", str(path), "--steps", "1", *TINY], capsys)
    assert f"{path} has no 'text' column (columns: body, id)" in line


def test_unreadable_corpus(tmp_path):
    path = _write(tmp_path / "secret.txt", b"private words " * 200)
    path.chmod(0)
    prefix = ()
    if os.geteuid() == 0:
        if not Path("/usr/bin/setpriv").exists():
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = ("/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search")
    line = one_line(run("train", str(path), "--steps", "1", *TINY, prefix=prefix))
    assert line == f"nnio-tui: error: cannot read {path}: permission denied"


def test_invalid_utf8_and_broken_jsonl_lines_train_with_a_warning(tmp_path, capsys):
    text = tmp_path / "latin1.txt"
    text.write_bytes(b"caf\xe9 au lait, " * 400)
    assert cli.main(["train", str(text), "--steps", "1", *TINY]) == 0
    assert (f"nnio-tui: warning: {text}: invalid UTF-8 bytes were replaced with U+FFFD"
            in capsys.readouterr().err)
    lines = [json.dumps({"text": "good words " * 300}), "{broken", json.dumps({"x": 1})]
    jsonl = _write(tmp_path / "d.jsonl", "\n".join(lines).encode())
    assert cli.main(["train", str(jsonl), "--steps", "1", *TINY]) == 0
    assert (f"nnio-tui: warning: {jsonl}: skipped 2 of 3 lines without valid JSON text"
            in capsys.readouterr().err)


def test_a_single_long_line_trains(tmp_path, capsys, monkeypatch):
    # 200 MB on one line was checked by hand (9.6 s, 120 MB peak, read a block at a time); a
    # small piece size exercises the same splitting of one line into pieces here.
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 1000)
    path = _write(tmp_path / "line.txt", b"one long line of words without a newline " * 500)
    assert cli.main(["train", str(path), "--steps", "1", *TINY]) == 0
    assert "line.txt: 4,001 tokens" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--encoding", "klingon"], "unknown encoding 'klingon': choose one of cl100k_base, "
                                "o200k_base, p50k_base, r50k_base, gpt2"),
    (["--encoding", "o200k_base"], "encoding o200k_base is not available offline: put "
                                   "o200k_base.tiktoken in "),
    (["--device", "cuda"], "CUDA is not available on this machine; use --device cpu"),
])
def test_encodings_and_devices(argv, message, capsys):
    if "cuda" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    assert message in fails(["train", "--steps", "1", "--preset", "tiny", *argv], capsys)


def test_cuda_missing_through_the_real_command():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert one_line(run("--device", "cuda", "--preset", "tiny")) == (
        "nnio-tui: error: CUDA is not available on this machine; use --device cpu")


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "1", "--batch-size", "0"], "argument --batch-size: must be greater "
                                                     "than 0, got 0"),
    (["train", "--steps", "1", "--lr", "-1"], "argument --lr: must be greater than 0, got -1"),
    (["train", "--steps", "1", "--lr", "nan"],
     "argument --lr: must be a finite number greater than 0, got nan"),
    (["train", "--steps", "1", "--lr", "inf"],
     "argument --lr: must be a finite number greater than 0, got inf"),
    (["train", "--steps", "0"], "argument --steps: must be greater than 0, got 0"),
    (["--context", "0"], "argument --context: must be greater than 0, got 0"),
    (["--context", "-3"], "argument --context: must be greater than 0, got -3"),
    (["--context", "many"], "argument --context: 'many' is not a whole number"),
    (["train", "--steps", "1e3"], "argument --steps: '1e3' is not a whole number"),
    (["train", "--steps", str(10**13)],
     f"argument --steps: must be at most 1,000,000,000,000, got {10**13}"),
    (["predict", "--checkpoint", "x", "--ids", "1", "abc"],
     "argument --ids: 'abc' is not a token id (a whole number)"),
    (["predict", "--checkpoint", "x", "--ids", "-1"], "argument --ids: token ids are 0 or more"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--top-k", "0"],
     "argument --top-k: must be greater than 0, got 0"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--temperature", "-1"],
     "argument --temperature: must be 0 or more, got -1"),
    (["train", "--steps", "1", "--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
    (["train", "--steps", "1", "--seed", "99999999999999999999"],
     "argument --seed: must be at most 9223372036854775807, got 99999999999999999999"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--seed", str(2**63)],
     f"argument --seed: must be at most 9223372036854775807, got {2**63}"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--seed", "1.5"],
     "argument --seed: '1.5' is not a whole number"),
    (["-"], "the app cannot read its corpus from stdin: save the text to a file and name it"),
    (["train", "--steps", "1", "--block-size", "100000"],
     "nnio-tui: error: --block-size must be between 1 and 8192, got 100000"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--top-p", "2"],
     "argument --top-p: must be greater than 0 and at most 1, got 2"),
    (["sample", "--checkpoint", "x", "--prompt", "a", "--temperature", "inf"],
     "argument --temperature: must be a finite number, got inf"),
])
def test_flags_out_of_range(argv, message):
    assert message in one_line(run(*argv))


@pytest.mark.parametrize("command", [[], ["train", "--steps", "1"]])
@pytest.mark.parametrize("flags, message", [
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["--n-embd", "100", "--n-head", "3"],
     "nnio-tui: error: --n-embd (100) must be divisible by --n-head (3)"),
])
def test_model_flags_that_make_no_model_fail_before_the_ui(command, flags, message):
    assert message in one_line(run(*command, *flags))


def test_predict_refuses_an_empty_text(tmp_path, capsys):
    from model.api import Session

    path = Session.open(None, preset="tiny", device="cpu").save(tmp_path / "r.safetensors")
    assert fails(["predict", "--checkpoint", str(path), "--text", ""], capsys) == (
        "nnio-tui: error: --text is empty: give the model some text to predict from")


def test_sample_refuses_an_empty_prompt_as_predict_refuses_an_empty_text(capsys):
    assert fails(["sample", "--checkpoint", "x", "--prompt", ""], capsys) == (
        "nnio-tui: error: --prompt is empty: give the model some text to continue")


def test_predict_lists_any_number_of_tokens_up_to_every_output(tmp_path, capsys):
    from model.api import Session

    path = Session.open(None, preset="tiny", device="cpu").save(tmp_path / "r.safetensors")
    argv = ["predict", "--checkpoint", str(path), "--ids", "1", "2", "--device", "cpu", "--top"]
    assert cli.main([*argv, str(10**9)]) == 0  # past the vocabulary: every output, once
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "rank\ttoken\tid\tprob" and lines[-1].startswith("entropy ")
    rows = [line.split("\t") for line in lines[2:-1]]
    assert len(rows) == 100_277 and sorted(int(r[2]) for r in rows) == list(range(100_277))
    assert [int(r[0]) for r in rows] == list(range(1, 100_278))


def test_an_empty_context_has_no_made_up_distribution():
    from model.api import Session

    with pytest.raises(ConfigError, match="the context is empty"):
        Session.open(None, preset="tiny", device="cpu").probe_ids([])


@pytest.mark.parametrize("argv, message", [
    (["--context", "17", "--preset", "tiny"], "--context 17 is longer than the model's block "
     "size 16: use --context 16 or less, or a larger --block-size for a new run"),
    (["--context", "65"], "--context 65 is longer than the model's block size 64"),
    (["--context", "40", "--preset", "tiny", "--block-size", "32"],
     "--context 40 is longer than the model's block size 32"),
])
def test_app_context_above_block_size_exits_before_the_ui(argv, message):
    assert one_line(run(*argv)).startswith(f"nnio-tui: error: {message}")


def test_app_with_a_missing_corpus_exits_before_the_ui(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    assert fails([str(missing)], capsys) == (
        f"nnio-tui: error: corpus not found: {missing} (check the path)")


def test_app_without_a_terminal_says_so_instead_of_drawing_into_a_pipe():
    assert one_line(run("--preset", "tiny")) == (
        "nnio-tui: error: the app needs a terminal for its screen and keys; in a script or"
        " a pipe use nnio-tui train, predict or sample")


def test_app_context_checked_against_a_resumed_checkpoint(tmp_path, capsys):
    from model.api import Session

    path = Session.open(None, preset="tiny", device="cpu").save(tmp_path / "r.safetensors")
    assert "block size 16" in fails(["--context", "20", "--checkpoint", str(path)], capsys)


def test_app_context_checked_against_the_default_run_it_resumes(capsys):
    assert cli.main(["train", "--preset", "tiny", "--block-size", "32", "--steps", "1",
                     "--device", "cpu"]) == 0
    args = cli.build_parser(None).parse_args(["--preset", "tiny", "--context", "24"])
    commands.check_app_flags(args, cli.overrides_from(args))  # the saved run takes 32
    args = cli.build_parser(None).parse_args(["--preset", "tiny", "--context", "40"])
    with pytest.raises(ConfigError, match="--context 40 is longer than the model's block size 32"):
        commands.check_app_flags(args, cli.overrides_from(args))


def test_app_context_checked_against_the_run_it_opens_not_one_it_leaves(capsys):
    def check(*argv):
        args = cli.build_parser(None).parse_args(["--preset", "tiny", *argv])
        commands.check_app_flags(args, cli.overrides_from(args))

    assert cli.main(["train", "--preset", "tiny", "--block-size", "32", "--steps", "1",
                     "--device", "cpu"]) == 0
    check("--context", "24", "--seed", "0")  # the saved seed: that run opens, and takes 32
    with pytest.raises(ConfigError, match="--context 24 is longer than the model's block size 16"):
        check("--context", "24", "--seed", "1")  # another seed: a new run, of the preset's 16
    assert cli.main(["train", "--preset", "tiny", "--steps", "1", "--device", "cpu",
                     "--seed", "1", "--block-size", "24"]) == 0  # saved beside the first
    check("--context", "24", "--seed", "1")  # that run, beside, opens now


def test_a_nan_loss_stops_keeps_good_weights_and_says_so(tmp_path, capsys, monkeypatch):
    from model.gpt import GPT

    real_forward, calls = GPT.forward, []

    def forward(self, idx, targets=None, **kwargs):
        logits, loss = real_forward(self, idx, targets, **kwargs)
        if targets is not None and self.training:
            calls.append(1)
            if len(calls) > 2:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)
    path = tmp_path / "run.safetensors"
    assert cli.main(["train", "--steps", "5", *TINY, "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("nnio-tui: error: the loss became nan at step 2; kept the last good "
                       "weights - a new run with a lower --lr (now 0.01) avoids this")
    assert err[-2] == f"saved checkpoint to {path}"


def test_out_of_memory_stops_keeps_the_model_and_suggests_smaller(tmp_path, capsys, monkeypatch):
    import torch

    from model.train import Trainer

    real = Trainer.train_step

    def step(self):
        if self.step >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", step)
    path = tmp_path / "run.safetensors"
    assert cli.main(["train", "--steps", "5", *TINY, "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("nnio-tui: error: cpu ran out of memory during a training step; the model "
                       "is kept: use a smaller --batch-size (now 4) or --block-size (now 16)")
    assert err[-2] == f"saved checkpoint to {path}"


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(
    lambda t: t.encode("utf-8", "surrogatepass"))))
def test_chunks_bytes_join_to_exactly_the_input_bytes(tmp_path_factory, data):
    """Arbitrary bytes through the real reader and tokenizer: the chunks' token bytes join to
    the input's bytes exactly (after U+FFFD replaces invalid UTF-8, which is then warned)."""
    path = tmp_path_factory.mktemp("fuzz") / "f.txt"
    path.write_bytes(data)
    try:
        source = tokenize_source(path)
    except CorpusError as error:  # only the refusals that the input explains
        message, head = str(error), data[:8192]
        assert "\n" not in message
        if "looks like a binary file" in message:
            assert b"\x00" in head or sum(b < 9 or 13 < b < 32 for b in head) > len(head) / 10
        else:
            codec = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
            text = data.decode(codec, errors="replace")
            assert not text.strip()
            assert message.endswith("holds only whitespace: it needs text" if text
                                    else "is empty: it needs text"), message
        return
    enc = load_encoding()
    chunks = source.chunks()
    assert [c.token_id for c in chunks] == source.ids()
    joined = b"".join(source.token_bytes(c.token_id) for c in chunks)
    text = data.decode("utf-8", errors="replace")
    assert joined == text.encode("utf-8", errors="surrogatepass")
    assert (joined == data) or any("invalid UTF-8" in w for w in source.warnings)
    assert all("\ufffd" not in c.text or "\ufffd" in text for c in chunks)
    assert enc.decode(source.ids(), errors="replace") == text


def test_a_run_trained_on_stdin_asks_for_its_corpus_again(tmp_path):
    ckpt = tmp_path / "piped.safetensors"
    trained = subprocess.run(
        [sys.executable, "-m", "nnio_tui", "train", "-", "--steps", "1", *TINY,
         "--checkpoint", str(ckpt)], cwd=ROOT, input="some words to learn from " * 60,
        capture_output=True, text=True, timeout=120, check=False)
    assert trained.returncode == 0, trained.stderr
    # without the corpus it would wait on stdin again; a closed stdin reads as empty
    assert one_line(run("train", "--steps", "1", "--device", "cpu", "--checkpoint", str(ckpt))) == (
        f"nnio-tui: error: {ckpt} was trained on text from stdin: give the corpus again")
    assert run("predict", "--checkpoint", str(ckpt), "--text", "some", "--device", "cpu",
               "--json").returncode == 0  # predict needs no corpus
