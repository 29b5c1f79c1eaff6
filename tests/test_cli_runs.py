"""Runs without --checkpoint: the default run is resumed, never overwritten by another."""

from __future__ import annotations

import pytest

from model.api import Session, default_checkpoint_path
from nnio_tui import cli


def test_a_second_run_resumes_the_first(capsys):
    assert cli.main(["train", "--preset", "tiny", "--steps", "2", "--device", "cpu"]) == 0
    assert cli.main(["train", "--preset", "tiny", "--steps", "1", "--device", "cpu"]) == 0
    assert "resumed" in capsys.readouterr().err
    saved = Session.load(default_checkpoint_path("sample_data", "tiny"), device="cpu")
    assert saved.step_count == 3


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
