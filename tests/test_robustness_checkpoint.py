"""Bad checkpoints for predict, sample, train --checkpoint and the app's --checkpoint: one line,
exit code 2, no traceback; and a save killed at any moment never costs the previous one."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from model import checkpoint as ckpt
from model.api import Session
from model.config import GPTConfig, from_json
from model.gpt import GPT
from nnio_tui import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = Session.open(None, preset="tiny", device="cpu", seed=1,
                     checkpoint=tmp_path_factory.mktemp("run") / "run.safetensors")
    s.train(2)
    return s


@pytest.fixture
def saved(session, tmp_path) -> Path:
    return session.save(tmp_path / "good.safetensors")


def fails(argv: list[str], capsys) -> str:
    """Run the real entry point in-process; it must exit 2 with exactly one stderr line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def truncated(good: Path) -> Path:
    good.write_bytes(good.read_bytes()[:4000])
    return good


def garbage(good: Path) -> Path:
    good.write_bytes(b"this is a text file, not weights\n" * 10)
    return good


def starting_with(magic: bytes):
    """Damaged bytes that begin like a pickle (0x80) or a zip (PK), still named .safetensors."""
    def make(good: Path) -> Path:
        good.write_bytes(magic + bytes(range(256)) * 16)
        return good
    return make


def folder(good: Path) -> Path:
    good.unlink()
    good.mkdir()
    return good


def missing(good: Path) -> Path:
    good.unlink()
    return good


def wrong_shape(good: Path) -> Path:
    with safe_open(str(good), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(good))
    tensors["model/transformer.wpe.weight"] = torch.zeros(8, 32)
    save_file(tensors, str(good), metadata=meta)
    return good


def edited(change):
    """A checkpoint damaged by change(metadata, tensors), both dicts edited in place."""
    def make(good: Path) -> Path:
        with safe_open(str(good), "pt") as f:
            meta = dict(f.metadata())
        tensors = load_file(str(good))
        change(meta, tensors)
        save_file(tensors, str(good), metadata=meta)
        return good
    return make


def _gpt_field(name, value):
    def change(meta, tensors):
        gpt = json.loads(meta["gpt_config"])
        gpt[name] = value
        meta["gpt_config"] = json.dumps(gpt)
    return change


BAD = {
    "missing": (missing, "does not exist; check the checkpoint path"),
    "truncated": (truncated, "is not a nnio-tui checkpoint (safetensors) or is damaged"),
    "not safetensors": (garbage, "is not a nnio-tui checkpoint (safetensors) or is damaged"),
    "pickle-like bytes": (starting_with(b"\x80"), "is not a readable PyTorch state dict or is"
                                                 " damaged"),
    "zip-like bytes": (starting_with(b"PK"), "is not a readable PyTorch state dict or is damaged"),
    "folder": (folder, "is a folder; give the checkpoint file inside it"),
    "wrong shape": (wrong_shape, "weight transformer.wpe.weight has shape (8, 32), the model"
                                 " expects (16, 32)"),
    "seed not a number": (edited(lambda m, t: m.update(seed="x")),
                          "has missing or unreadable settings"),
    "sampler state not JSON": (edited(lambda m, t: m.update(data_state="{oops")),
                               "has missing or unreadable settings"),
    "sampler state of another kind": (edited(lambda m, t: m.update(data_state='{"a": 1}')),
                                      "has an unreadable sampler state"),
    "heads that do not divide the width": (edited(_gpt_field("n_head", 3)),
                                           "n_embd (32) must be divisible by n_head (3)"),
    "block size as text": (edited(_gpt_field("block_size", "16")),
                           "GPTConfig.block_size should be int, got '16'"),
    "wrong moment shape": (
        edited(lambda m, t: t.update({"optim/transformer.wpe.weight/exp_avg": torch.zeros(8, 32)})),
        ("optimizer state transformer.wpe.weight/exp_avg has shape (8, 32), the weight has"
         " (16, 32)")),
}
COMMANDS = {
    "predict": lambda p: ["predict", "--checkpoint", str(p), "--text", "hi", "--device", "cpu"],
    "sample": lambda p: ["sample", "--checkpoint", str(p), "--prompt", "hi", "--device", "cpu"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_checkpoint_for_predict_and_sample(saved, capsys, command, case):
    make, message = BAD[case]
    assert message in fails(COMMANDS[command](make(saved)), capsys)


@pytest.mark.parametrize("case", ["truncated", "not safetensors", "pickle-like bytes", "wrong shape",
                                  "heads that do not divide the width", "wrong moment shape"])
def test_bad_checkpoint_for_train(saved, capsys, case):
    make, message = BAD[case]
    argv = ["train", "--steps", "1", "--device", "cpu", "--checkpoint", str(make(saved))]
    line = fails(argv, capsys)
    assert message in line
    # the way on: a run at another path, or at this one once the file is out of the way
    assert line.endswith(": move it aside to start a new run there, or give another"
                         " --checkpoint path")


def test_train_refuses_a_folder_as_its_checkpoint(tmp_path, capsys):
    line = fails(["train", "--steps", "1", "--preset", "tiny", "--checkpoint", str(tmp_path)],
                 capsys)
    assert "is a folder; give a file path for the checkpoint" in line


@pytest.mark.parametrize("flags, message", [
    (["--encoding", "o200k_base"], "was saved with encoding cl100k_base, not o200k_base: drop"
                                   " --encoding to resume it, or give a new --checkpoint path"),
    (["--block-size", "32"], "was saved with block_size 16, not 32: drop --block-size"),
    (["--preset", "cpu"], "was saved with preset tiny, not cpu: drop --preset"),
    (["--n-embd", "64"], "was saved with n_embd 32, not 64"),
])
def test_resuming_with_other_settings_names_the_field(saved, capsys, flags, message):
    for command in (["train", "--steps", "1"], []):  # train, and the app (fails before its UI)
        argv = [*command, "--device", "cpu", "--checkpoint", str(saved), *flags]
        if not command:
            pytest.importorskip("textual")
            # the app checks this in its worker; open it the same way, without a screen
            from nnio_tui.commands import open_for_training

            args = cli.build_parser(None).parse_args(argv)
            with pytest.raises(Exception, match=message.split(":")[0]):
                open_for_training(args, None)
            continue
        assert message in fails(argv, capsys)


def test_train_resumes_its_checkpoint(saved, session, capsys):
    assert cli.main(["train", "--steps", "2", "--device", "cpu", "--checkpoint", str(saved)]) == 0
    assert f"saved checkpoint to {saved}" in capsys.readouterr().err
    _, meta = ckpt.read(saved)
    assert int(meta["step"]) == session.step_count + 2


def test_a_run_on_a_relative_path_resumes_from_another_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "c.txt").write_text("words to learn from, again and again. " * 80)
    run = tmp_path / "run.safetensors"
    monkeypatch.chdir(tmp_path / "a")
    assert cli.main(["train", "c.txt", "--steps", "1", "--preset", "tiny", "--device", "cpu",
                     "--checkpoint", str(run)]) == 0
    monkeypatch.chdir(tmp_path / "b")  # where no c.txt is
    assert cli.main(["train", "--steps", "1", "--device", "cpu", "--checkpoint", str(run)]) == 0
    _, meta = ckpt.read(run)
    assert meta["corpus_source"] == str(tmp_path / "a" / "c.txt") and meta["step"] == "2"


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("command", ["predict", "sample", "train", "app"])
def test_a_malicious_pickle_never_runs(tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the payload would write, in this process too
    evil = tmp_path / "ckpt.pt"
    torch.save({"model": Boom(), "model_args": {}}, evil)
    argv = {"predict": COMMANDS["predict"](evil), "sample": COMMANDS["sample"](evil),
            "train": ["train", "--steps", "1", "--checkpoint", str(evil)],
            "app": ["--checkpoint", str(evil), "--context", "4"]}[command]
    if command == "app":
        from nnio_tui.commands import open_for_training

        with pytest.raises(Exception, match="refusing to unpickle"):
            open_for_training(cli.build_parser(None).parse_args(argv), None)
        assert not (tmp_path / "pwned.txt").exists()
        return
    result = subprocess.run([sys.executable, "-m", "nnio_tui", *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"nnio-tui: error: {evil} holds Python objects, not just tensors; refusing to unpickle it")
    assert not (tmp_path / "pwned.txt").exists()


def _nnio_tui(prefix: list[str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "nnio_tui", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["train", "--steps", "1"], ["--context", "4"]])
def test_no_write_permission_is_refused_before_training(tmp_path, command, unprivileged):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    target = locked / "run.safetensors"
    result = _nnio_tui(unprivileged, *command, "--preset", "tiny", "--checkpoint", str(target))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"nnio-tui: error: cannot write {target}: permission "
                                     "denied; save somewhere else (--checkpoint PATH)")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["predict", "--text", "hi"], ["train", "--steps", "1"]])
def test_a_checkpoint_without_read_permission_gives_one_line(saved, command, unprivileged):
    saved.chmod(0o200)
    result = _nnio_tui(unprivileged, *command, "--device", "cpu", "--checkpoint", str(saved))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"nnio-tui: error: cannot read {saved}: permission denied"


def test_a_save_killed_at_any_moment_leaves_a_loadable_checkpoint(session, tmp_path):
    """SIGKILL a process that saves over and over, at random moments, 60 times; each time the
    checkpoint is whole, old or new, and the killed saves' temporary files get cleaned up."""
    started = time.perf_counter()
    path = session.save(tmp_path / "run.safetensors")
    save_seconds = time.perf_counter() - started
    first_step = session.step_count
    rng = random.Random(0)
    mid_save = 0
    for _ in range(60):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one more step, then save again and again until killed
            try:
                os.close(ready_r)
                torch.set_num_threads(1)
                session.step()
                os.write(ready_w, b"1")
                while True:
                    session.save(path)
            finally:
                os._exit(1)
        os.close(ready_w)
        # Wait for the child's step, however slow a loaded machine makes it, so that the
        # kill lands somewhere in the saving loop rather than always before it.
        assert select.select([ready_r], [], [], 60)[0], "the saving child never got going"
        os.read(ready_r, 1)
        os.close(ready_r)
        time.sleep(rng.uniform(0.0, 2.5 * save_seconds))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        mid_save += any(tmp_path.glob(".run.safetensors.*.tmp"))
        tensors, meta = ckpt.read(path)
        assert int(meta["step"]) in (first_step, first_step + 1)
        assert tensors["model/transformer.wpe.weight"].shape == (16, 32)
    assert mid_save >= 5, "the kills never landed inside a save"
    assert Session.load(path, device="cpu").step_count in (first_step, first_step + 1)
    session.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["run.safetensors"]


def test_predict_works_when_the_training_corpus_is_gone(tmp_path, capsys):
    corpus = tmp_path / "gone.txt"
    corpus.write_text("the cat sat on the mat and the dog sat on the log. " * 40)
    run = Session.open(corpus, preset="tiny", device="cpu", checkpoint=tmp_path / "c.safetensors")
    run.train(1)
    path = run.save()
    corpus.unlink()
    argv = ["predict", "--checkpoint", str(path), "--text", "the cat", "--json", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert '"top"' in capsys.readouterr().out


def test_a_nanogpt_fine_tune_of_gpt2_loads_its_50257_rows(tmp_path):
    cfg = GPTConfig(vocab_size=50257, block_size=8, n_layer=1, n_head=2, n_embd=16)
    theirs = GPT(cfg).state_dict()
    theirs["transformer.wte.weight"] = torch.randn(50257, 16)  # OpenAI's rows, unpadded
    theirs["lm_head.weight"] = theirs["transformer.wte.weight"]
    args = {"vocab_size": 50257, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}
    torch.save({"model": theirs, "model_args": args, "iter_num": 7}, tmp_path / "ckpt.pt")
    tensors, meta = ckpt.read_nanogpt(tmp_path / "ckpt.pt")
    ours = GPT(from_json(GPTConfig, meta["gpt_config"]))
    ckpt.restore_model(ours, tensors, tmp_path / "ckpt.pt")
    rows = ours.transformer.wte.weight.detach()
    assert torch.equal(rows[:50257], theirs["transformer.wte.weight"]) and meta["step"] == "7"


def test_a_nanogpt_file_without_its_shape_says_so(tmp_path, capsys):
    torch.save({"model": {}, "model_args": {"vocab_size": 50257}}, tmp_path / "ckpt.pt")
    line = fails(COMMANDS["predict"](tmp_path / "ckpt.pt"), capsys)
    assert line.endswith("ckpt.pt: model_args lacks 'block_size'; the file is incomplete")


def test_a_run_that_cannot_be_saved_where_it_lives_is_saved_to_the_temp_folder(
        tmp_path, capsys, monkeypatch):
    import tempfile

    from model import checkpoint as ckpt
    from model.api import CheckpointError, Session
    from model.run_files import runs_folder

    spares = tmp_path / "tmp"
    spares.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spares))
    target = tmp_path / "runs" / "run.safetensors"
    real_save = ckpt.save

    def disk_full(path, *args, **kwargs):
        if Path(path) == target:
            raise CheckpointError(f"cannot write {path}: No space left on device")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save", disk_full)
    argv = ["train", "--preset", "tiny", "--steps", "2", "--device", "cpu", "--checkpoint",
            str(target)]
    def fails_at_the_save() -> str:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err.strip().splitlines()[-1]

    line = fails_at_the_save()
    spare = runs_folder() / "rescued-run.safetensors"  # the user's runs folder first
    assert line.endswith(f"cannot write {target}: No space left on device; the run was saved"
                         f" to {spare} instead: go on with --checkpoint {spare}")
    assert Session.load(spare, device="cpu").step_count == 2  # the steps are not lost
    assert fails_at_the_save().endswith(f"--checkpoint {spare.with_name(spare.stem + '-2')}"
                                        ".safetensors")  # never over an earlier rescue
    runs_folder().rename(runs_folder().with_name("gone"))
    runs_folder().write_text("a file where the runs folder was")  # not writable: temp then
    line = fails_at_the_save()
    spare = spares / "rescued-run.safetensors"
    assert line.endswith(f"the run was saved to {spare} instead (a temp folder: move it"
                         f" somewhere safe): go on with --checkpoint {spare}")
    assert Session.load(spare, device="cpu").step_count == 2


def test_a_header_without_a_seed_is_not_refused_for_one(saved, capsys):
    edited(lambda meta, tensors: meta.pop("seed"))(saved)  # as a nanoGPT file has none
    argv = ["train", "--steps", "1", "--device", "cpu", "--checkpoint", str(saved)]
    assert cli.main([*argv, "--seed", "5"]) == 0
    assert "resumed" in capsys.readouterr().err
