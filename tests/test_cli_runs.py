"""Runs without --checkpoint: the default run is resumed, never overwritten by another."""

from __future__ import annotations

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
