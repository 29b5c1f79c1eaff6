"""Whole runs of the commands: the default run is resumed, never overwritten by another;
what train, predict and sample print."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from model.api import Session, default_checkpoint_path, default_run_path
from nnio_tui import cli

ROOT = Path(__file__).resolve().parent.parent


def test_a_second_run_resumes_the_first(capsys):
    assert cli.main(["train", "--preset", "tiny", "--steps", "2", "--device", "cpu"]) == 0
    assert cli.main(["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]) == 0
    assert "resumed" in capsys.readouterr().err
    saved = Session.load(default_checkpoint_path("sample_data", "tiny"), device="cpu")
    assert saved.step_count == 3


def test_the_resumed_run_is_named_from_the_home_folder(capsys, monkeypatch, tmp_path):
    import os

    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    path = default_checkpoint_path("sample_data", "tiny")
    shown = os.path.join("~", path.relative_to(tmp_path))
    assert f"nnio-tui: resumed {shown} at step 1 " in capsys.readouterr().err


def test_other_settings_start_a_new_run_beside_the_saved_one(capsys):
    path = default_checkpoint_path("sample_data", "tiny")
    assert cli.main(["train", "--preset", "tiny", "--steps", "2", "--device", "cpu"]) == 0
    before = path.read_bytes()
    argv = ["train", "--preset", "tiny", "--steps", "1", "--block-size", "8", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "this run saves to" in capsys.readouterr().err
    assert path.read_bytes() == before
    beside = path.with_name("sample_data-tiny-2.safetensors")
    assert Session.load(beside, device="cpu").block_size == 8


def test_the_same_other_settings_again_resume_the_run_beside_the_saved_one(capsys):
    path = default_checkpoint_path("sample_data", "tiny")
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    assert cli.main(train) == 0 and cli.main([*train, "--block-size", "8"]) == 0
    assert cli.main([*train, "--block-size", "12"]) == 0
    err = capsys.readouterr().err
    assert "(saved with block_size 16, not 12); this run saves to" in err
    assert cli.main([*train, "--block-size", "8"]) == 0
    err = capsys.readouterr().err
    assert "resumed " in err and "sample_data-tiny-2.safetensors at step 1, the run with these" \
        " settings" in " ".join(err.split())
    assert Session.load(path.with_name("sample_data-tiny-2.safetensors"),
                        device="cpu").step_count == 2
    assert Session.load(path, device="cpu").step_count == 1
    assert not path.with_name("sample_data-tiny-4.safetensors").exists()


def test_precision_is_a_runtime_choice_not_another_run(capsys):
    # a run trained in bf16 resumes in float32 (and back) instead of starting a run beside it
    path = default_checkpoint_path("sample_data", "tiny")
    argv = ["train", "--preset", "tiny", "--steps", "2", "--device", "cpu"]
    assert cli.main([*argv, "--precision", "bf16"]) == 0
    assert cli.main([*argv, "--precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "resumed" in err and "this run saves to" not in err
    assert Session.load(path, device="cpu").step_count == 4
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--precision", "half"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_another_seed_is_another_run_and_no_seed_resumes_whichever_was_saved(capsys):
    path = default_checkpoint_path("sample_data", "tiny")
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    assert cli.main(train) == 0 and cli.main([*train, "--seed", "3"]) == 0
    assert "(saved with seed 0, not 3); this run saves to" in capsys.readouterr().err
    beside = path.with_name("sample_data-tiny-2.safetensors")
    assert Session.load(beside, device="cpu").info().step == 1
    assert cli.main([*train, "--seed", "3"]) == 0  # that seed again: the run beside resumes
    assert cli.main(train) == 0  # no seed: the default run resumes with its own
    assert cli.main([*train, "--seed", "0"]) == 0  # the saved seed, said out loud
    assert Session.load(beside, device="cpu").step_count == 2
    assert Session.load(path, device="cpu").step_count == 3


def test_a_seed_the_checkpoint_was_not_saved_with_is_refused(tmp_path, capsys):
    path = tmp_path / "run.safetensors"
    argv = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu",
            "--checkpoint", str(path)]
    assert cli.main(argv) == 0
    before = path.read_bytes()
    assert cli.main([*argv, "--seed", "5"]) == 2
    assert (f"{path} was saved with seed 0, not 5: drop --seed to resume it, or give a new"
            " --checkpoint path") in " ".join(capsys.readouterr().err.split())
    assert path.read_bytes() == before


@pytest.fixture
def tiny_checkpoint(tmp_path):
    return Session.open(None, preset="tiny", device="cpu").save(tmp_path / "tiny.safetensors")


def test_predict_says_how_much_of_a_long_text_it_used(tiny_checkpoint, capsys):
    text = " ".join(f"word{i}" for i in range(40))
    n_tokens = len(Session.load(tiny_checkpoint, device="cpu").encode(text))
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--text"]
    assert cli.main([*argv, text]) == 0
    first = capsys.readouterr().out.splitlines()[0]  # a line of its own, not wrapped
    assert first == f"next token after the last 16 of {n_tokens} tokens, of 100,277 outputs"
    assert cli.main([*argv, "hi"]) == 0
    assert capsys.readouterr().out.startswith("next token after 1 token, of 100,277 outputs\n")
    assert cli.main([*argv, text, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_tokens"] == n_tokens and len(result["context_ids"]) == 16


def test_predict_shows_small_probabilities_with_two_digits(tiny_checkpoint, capsys):
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--text", "hi"]
    assert cli.main(argv) == 0
    probs = re.findall(r"([\d.]+)%", capsys.readouterr().out)
    assert len(probs) == 10 and all(float(p) > 0 for p in probs)  # untrained: all near 0.001%


def test_train_header_names_the_precision(capsys):
    argv = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu", "--precision", "fp32"]
    assert cli.main(argv) == 0
    assert "tiny 3.2M params, cpu fp32\n" in capsys.readouterr().err


def test_train_says_it_resumes_its_checkpoint_and_counts_from_there(tmp_path, capsys):
    path = tmp_path / "run.safetensors"
    argv = ["train", "--preset", "tiny", "--device", "cpu", "--checkpoint", str(path)]
    assert cli.main([*argv, "--steps", "2"]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"nnio-tui: resumed {path} at step 2\n")
    assert re.search(r"step\s+3\s+1/1 ", err), err


def test_sample_shows_each_token_before_choosing_the_next(tiny_checkpoint, capsys, monkeypatch):
    real, written = Session.sample, []

    def sample(self, *args, **kwargs):
        written.append(capsys.readouterr().out)  # what was on stdout before this draw
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "sample", sample)
    argv = ["sample", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
            "--prompt", "Once", "--max-tokens", "4", "--seed", "7"]
    assert cli.main(argv) == 0
    written.append(capsys.readouterr().out)
    monkeypatch.setattr(Session, "sample", real)
    session = Session.load(tiny_checkpoint, device="cpu")
    picks = session.generate(session.encode("Once"), 4, seed=7)  # the same draws as before
    shown = [session.decode([p.token.token_id]) for p in picks]
    assert written == ["Once", *shown[:3], shown[3] + "\n"]


def _sampled_ids(checkpoint, capsys, *seed) -> list[int]:
    argv = ["sample", "--checkpoint", str(checkpoint), "--device", "cpu", "--prompt", "Once",
            "--max-tokens", "8", "--temperature", "3", "--json", *seed]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)["ids"]


def test_sample_draws_new_tokens_each_run_unless_a_seed_is_given(tiny_checkpoint, capsys):
    assert _sampled_ids(tiny_checkpoint, capsys, "--seed", "1") == \
        _sampled_ids(tiny_checkpoint, capsys, "--seed", "1")
    # seeds 1 and 2 are not the same draws shifted by one token
    one, two = (_sampled_ids(tiny_checkpoint, capsys, "--seed", s) for s in ("1", "2"))
    assert one[1:] != two[:-1]
    # 8 draws at temperature 3 over 100,277 ids: two unseeded runs agreeing is no chance
    assert _sampled_ids(tiny_checkpoint, capsys) != _sampled_ids(tiny_checkpoint, capsys)


def test_a_file_of_the_same_name_in_another_folder_is_another_run(tmp_path, capsys):
    for folder, words in (("a", "the cat sat on the mat. "), ("b", "ships sail in the bay. ")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.txt").write_text(words * 100)
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    path = default_checkpoint_path("notes.txt", "tiny")
    assert cli.main([*train, str(tmp_path / "a" / "notes.txt")]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert cli.main([*train, str(tmp_path / "b" / "notes.txt")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (f"(saved with corpus {tmp_path / 'a' / 'notes.txt'}, not"
            f" {tmp_path / 'b' / 'notes.txt'}); this run saves to") in err
    # a moved folder's run is one flag away
    assert (f"-tiny-2.safetensors; --checkpoint {path} goes on with that run on this text"
            in err)
    assert path.read_bytes() == before
    assert cli.main([*train, str(tmp_path / "b" / "notes.txt")]) == 0  # its own run resumes
    assert "notes.txt-tiny-2.safetensors at step 1, the run with these settings" in " ".join(
        capsys.readouterr().err.split())
    assert Session.load(path, device="cpu").step_count == 1
    assert cli.main([*train, str(tmp_path / "b" / "notes.txt"), "--checkpoint", str(path)]) == 0
    assert Session.load(path, device="cpu").step_count == 2  # the flag the notice gave


def test_text_from_stdin_never_overwrites_the_last_run_from_stdin(tmp_path):
    import os
    import subprocess
    import sys

    path = default_run_path("-", "tiny")
    for words in ("the cat sat on the mat. ", "ships sail in the bay. "):
        piped = subprocess.run(
            [sys.executable, "-m", "nnio_tui", "train", "-", "--preset", "tiny", "--steps", "1",
             "--device", "cpu"], input=words * 100, capture_output=True, text=True,
            timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert piped.returncode == 0, piped.stderr
        if words.startswith("the cat"):
            first = path.read_bytes()
    assert "(text from stdin is never resumed: it may be other text); this run saves to" in (
        " ".join(piped.stderr.split()))
    assert path.read_bytes() == first
    assert path.with_name(f"{path.stem}-2{path.suffix}").is_file()


@pytest.mark.parametrize("command", [["predict", "--text", "the cat"], ["sample", "--prompt",
                                                                         "the cat", "--seed", "1"]])
def test_predict_and_sample_never_read_the_training_corpus(tmp_path, capsys, monkeypatch,
                                                            command):
    import model.corpus

    corpus = tmp_path / "big.txt"
    corpus.write_text("the cat sat on the mat. " * 100)
    checkpoint = Session.open(corpus, preset="tiny", device="cpu").save(tmp_path / "run.safetensors")
    opened, real_open = [], model.corpus.open_corpus

    def open_corpus(source, *args, **kwargs):
        opened.append(source)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(model.corpus, "open_corpus", open_corpus)
    assert cli.main([*command, "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert opened == [None]  # the bundled sample stood in: a big corpus costs nothing here
    assert "cat" in capsys.readouterr().out


def _encoding_file(folder: Path) -> Path:
    import shutil

    import tiktoken_ext

    folder.mkdir(parents=True, exist_ok=True)
    shipped = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    return Path(shutil.copy(shipped, folder / "cl100k_base.tiktoken"))


def test_an_encoding_given_as_a_file_is_saved_by_its_name(tmp_path, capsys, monkeypatch):
    from model.run_files import peek_metadata

    monkeypatch.chdir(tmp_path)
    _encoding_file(tmp_path / "encs")
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    assert cli.main([*train, "--encoding", "encs/cl100k_base.tiktoken"]) == 0
    path = default_checkpoint_path("sample_data", "tiny")
    assert peek_metadata(path)["encoding"] == "cl100k_base"  # not the path as typed
    assert cli.main([*train, "--encoding", "cl100k_base"]) == 0  # the same encoding: resumed
    assert cli.main(train) == 0
    assert "this run saves to" not in capsys.readouterr().err
    assert Session.load(path, device="cpu").step_count == 3
    monkeypatch.chdir(tmp_path / "encs")  # elsewhere, where the relative path means nothing
    assert cli.main(["predict", "--checkpoint", str(path), "--text", "hi", "--device",
                     "cpu"]) == 0


def test_a_run_saved_with_an_encoding_path_loads_by_name_once_the_path_is_gone(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run.safetensors"
    Session.open(None, preset="tiny", device="cpu").save(run)
    with safe_open(str(run), "pt") as f:
        meta = dict(f.metadata())
    meta["encoding"] = "gone/cl100k_base.tiktoken"  # as runs saved it before names were kept
    save_file(load_file(str(run)), str(run), metadata=meta)
    assert Session.load(run, device="cpu").info().encoding == "cl100k_base"


def test_predict_and_sample_take_the_encoding_file_and_refuse_another(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = Session.open(None, preset="tiny", device="cpu").save(tmp_path / "run.safetensors")
    other = tmp_path / "other.safetensors"  # the same run, said to be of another encoding
    with safe_open(str(run), "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(run)), str(other), metadata={**meta, "encoding": "o200k_base"})
    given = _encoding_file(tmp_path / "encs")
    for command in (["predict", "--text", "hi"], ["sample", "--prompt", "hi", "--max-tokens",
                                                  "1"]):
        argv = [*command, "--device", "cpu", "--encoding", str(given), "--checkpoint"]
        assert cli.main([*argv, str(run)]) == 0
        capsys.readouterr()
        assert cli.main([*argv, str(other)]) == 2
        assert (f"{other} was saved with encoding o200k_base, not cl100k_base: drop --encoding"
                in " ".join(capsys.readouterr().err.split()))


def test_a_resumed_run_whose_corpus_is_gone_says_where_that_path_came_from(tmp_path, capsys):
    text = tmp_path / "gone.txt"
    text.write_text("the lamp room had a hundred steps. " * 60)
    run = tmp_path / "run.safetensors"
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu", "--checkpoint",
             str(run)]
    assert cli.main([*train, str(text)]) == 0
    text.unlink()
    capsys.readouterr()
    assert cli.main(train) == 2
    assert capsys.readouterr().err.strip() == (
        f"nnio-tui: error: corpus not found: {text} (check the path); run.safetensors was"
        " trained on it: name a corpus to go on with other text")
    assert cli.main([*train, str(ROOT / "sample_data")]) == 0  # as it says


def test_a_damaged_default_run_is_left_and_the_run_beside_it_goes_on(capsys):
    path = default_checkpoint_path("sample_data", "tiny")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint at all" * 100)
    train = ["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    for _ in range(3):
        assert cli.main(train) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "this run saves to" in err and "was not readable" in err
    beside = path.with_name("sample_data-tiny-2.safetensors")
    assert Session.load(beside, device="cpu").step_count == 3  # one run, not three
    assert not path.with_name("sample_data-tiny-3.safetensors").exists()
    assert path.read_bytes().startswith(b"not a checkpoint")  # never overwritten


def test_an_encoding_folder_is_said_to_be_one_by_every_command(tmp_path, capsys):
    run = Session.open(None, preset="tiny", device="cpu").save(tmp_path / "run.safetensors")
    (tmp_path / "encs").mkdir()
    folder = str(tmp_path / "encs") + "/"
    for argv in (["predict", "--checkpoint", str(run), "--text", "hi"],
                 ["train", "--steps", "1", "--checkpoint", str(run)],
                 ["train", "--preset", "tiny", "--steps", "1"]):  # the default run
        assert cli.main([*argv, "--device", "cpu", "--encoding", folder]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"nnio-tui: error: {tmp_path / 'encs'} is a folder: give the NAME.tiktoken file in"
            " it"], err


def test_encoding_names_from_paths_of_any_system():
    from model.run_files import encoding_name

    assert encoding_name("cl100k_base") == "cl100k_base"
    assert encoding_name("encs/o200k_base.tiktoken") == "o200k_base"
    assert encoding_name("C:\\Users\\me\\o200k_base.tiktoken") == "o200k_base"
