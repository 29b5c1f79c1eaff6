"""Checkpoints: exact round trip, resume, and clear refusals of anything else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from model.api import CheckpointError, Session

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    session = Session.open(None, preset="tiny", device="cpu", seed=3,
                           checkpoint=tmp_path_factory.mktemp("runs") / "run.safetensors")
    session.train(4)
    return session


def test_round_trip_gives_identical_logits_and_optimizer_state(trained, tmp_path):
    assert trained.dirty
    path = trained.save(tmp_path / "a.safetensors")
    assert not trained.dirty and os.listdir(tmp_path) == ["a.safetensors"]  # no temp left
    loaded = Session.load(path, device="cpu")
    assert loaded.info().step == 4 and loaded.info().preset == "tiny"
    assert loaded.probe(50, 16, k=20) == trained.probe(50, 16, k=20)
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        assert f.metadata()["encoding"] == "cl100k_base"
    assert "optim/transformer.wte.weight/exp_avg_sq" in keys


def test_a_reset_run_saves_beside_the_saved_one_it_replaces(tmp_path):
    run_path = tmp_path / "run.safetensors"
    run = Session.open(None, preset="tiny", device="cpu", seed=3, checkpoint=run_path)
    run.train(2)
    run.save()
    run.reset()
    assert run.dirty  # a quit now saves the fresh weights, so the next launch starts from them
    run.save()
    kept = tmp_path / "run-before-reset.safetensors"
    assert Session.load(kept, device="cpu").info().step == 2
    assert Session.load(run_path, device="cpu").info().step == 0
    run.train(1)
    run.save()  # only the first save after a reset moves the old run aside
    assert Session.load(kept, device="cpu").info().step == 2
    assert Session.load(run_path, device="cpu").info().step == 1
    run.reset()
    run.save(tmp_path / "elsewhere.safetensors")  # another path: the run's own file stays
    assert Session.load(run_path, device="cpu").info().step == 1
    assert Session.load(kept, device="cpu").info().step == 2
    run.save()  # a second reset keeps the run beside the first one's, never over it
    assert Session.load(kept, device="cpu").info().step == 2
    second = tmp_path / "run-before-reset-2.safetensors"
    assert Session.load(second, device="cpu").info().step == 1
    assert Session.load(run_path, device="cpu").info().step == 0


def test_a_reset_keeps_no_copy_of_an_untrained_saved_run(tmp_path):
    run_path = tmp_path / "run.safetensors"
    run = Session.open(None, preset="tiny", device="cpu", seed=3, checkpoint=run_path)
    run.save()  # step 0: the weights a reset makes anyway
    for _ in range(2):
        run.reset()
        run.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors"]
    run.train(1)
    run.save()
    run.reset()
    run.save()  # a trained run is still kept
    assert Session.load(tmp_path / "run-before-reset.safetensors", device="cpu").step_count == 1
    run.nudge(100, 8)  # at step 0: the weights moved all the same
    run.save()
    resumed = Session.load(run_path, device="cpu")
    resumed.reset()
    resumed.save()
    kept = Session.load(tmp_path / "run-before-reset-2.safetensors", device="cpu")
    assert kept.step_count == 0 and kept.probe(100, 8).label.prob == pytest.approx(
        run.probe(100, 8).label.prob, rel=1e-5)  # the nudged weights, kept


def test_a_failed_save_after_a_reset_puts_the_saved_run_back(tmp_path, monkeypatch):
    from model import checkpoint

    run_path = tmp_path / "run.safetensors"
    run = Session.open(None, preset="tiny", device="cpu", seed=3, checkpoint=run_path)
    run.train(1)
    run.save()
    run.reset()

    def full_disk(*args, **kwargs):
        raise CheckpointError("no space left on the device")

    monkeypatch.setattr(checkpoint, "save", full_disk)
    with pytest.raises(CheckpointError, match="no space"):
        run.save()
    assert sorted(os.listdir(tmp_path)) == ["run.safetensors"] and run.dirty
    monkeypatch.undo()
    assert Session.load(run_path, device="cpu").info().step == 1


def test_resumed_run_continues_like_an_uninterrupted_one(tmp_path):
    straight = Session.open(None, preset="tiny", device="cpu", seed=5)
    straight.train(3)
    expected = [straight.step().loss for _ in range(3)]
    first = Session.open(None, preset="tiny", device="cpu", seed=5)
    first.train(3)
    resumed = Session.load(first.save(tmp_path / "r.safetensors"), device="cpu")
    assert [resumed.step().loss for _ in range(3)] == expected


def test_a_resumed_run_saved_before_any_step_keeps_its_optimizer_state(tmp_path):
    # AdamW is made at the first step; until then the loaded moments wait beside it
    run = Session.open(None, preset="tiny", device="cpu")
    run.train(2)
    first = run.save(tmp_path / "a.safetensors")
    resumed = Session.load(first, device="cpu")
    assert resumed._trainer._optimizer is None
    second = resumed.save(tmp_path / "b.safetensors")
    with safe_open(str(first), "pt") as a, safe_open(str(second), "pt") as b:
        optim = sorted(k for k in a.keys() if k.startswith("optim/"))
        assert optim and optim == sorted(k for k in b.keys() if k.startswith("optim/"))
        for key in optim:
            assert torch.equal(a.get_tensor(key), b.get_tensor(key))


def test_the_first_probe_does_not_wait_for_the_optimizer():
    # building AdamW imports torch._dynamo (~1.5 s): a fresh interpreter shows whether the
    # open-and-probe path pulled it in
    code = (
        "import sys\n"
        "from model.api import Session\n"
        "s = Session.open(None, preset='tiny', device='cpu')\n"
        "s.probe(0, 8)\n"
        "assert 'torch._dynamo' not in sys.modules, 'the probe imported torch._dynamo'\n"
        "s.prepare_training()\n"
        "assert s._trainer._optimizer is not None\n"
        "assert s.step().loss > 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_default_path_is_in_the_user_data_folder():
    session = Session.open(None, preset="tiny", device="cpu")
    path = session.save()
    assert path.name == "sample_data-tiny.safetensors" and path.parent.name == "runs"
    assert str(path) == session.info().checkpoint_path


def test_missing_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Session.load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        Session.load(tmp_path)


@pytest.mark.parametrize("content", [b"hello, not a checkpoint", b""])
def test_garbage_is_refused(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a nnio-tui checkpoint .* or is damaged"):
        Session.load(path)


def test_truncated_is_refused(trained, tmp_path):
    path = trained.save(tmp_path / "t.safetensors")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="damaged"):
        Session.load(path)


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_pickles_are_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": Boom()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        Session.load(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_state_dict_without_settings_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="without model settings"):
        Session.load(path)


def test_shape_mismatch_names_the_weight(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    path = trained.save(tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["model/transformer.wpe.weight"] = torch.zeros(8, 32)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="transformer.wpe.weight has shape"):
        Session.load(path)


# Session.save in a process that cannot ignore permissions (root can): it prints the error
SAVE_INTO = """import sys
from model.api import CheckpointError, Session
session = Session.open(None, preset="tiny", device="cpu")
try:
    session.save(sys.argv[1])
except CheckpointError as error:
    print(error)
"""


def test_unwritable_folder_is_a_checkpoint_error(tmp_path, unprivileged):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    target = folder / "x.safetensors"
    result = subprocess.run([*unprivileged, sys.executable, "-c", SAVE_INTO, str(target)],
                            capture_output=True, text=True, timeout=120, check=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == (f"cannot write {target}: permission denied; save"
                                     " somewhere else (--checkpoint PATH)")
    assert list(folder.iterdir()) == []


def test_loss_curves_survive_a_save_and_load(tmp_path):
    from model.api import Session

    run = Session.open(None, preset="tiny", device="cpu", checkpoint=tmp_path / "h.safetensors")
    run.train(3)
    run.evaluate(1)
    losses, val_losses = run.loss_history()
    assert len(losses) == 3 and len(val_losses) == 1
    back = Session.load(run.save(), device="cpu")
    assert back.loss_history() == (losses, val_losses)


def test_a_header_length_that_looks_like_a_pickle_marker_is_still_safetensors(tmp_path):
    from safetensors.torch import save_file

    from model.run_files import looks_like_pickle

    for pad in range(300):  # header lengths sweep through every low byte, 0x80 included
        path = tmp_path / "t.safetensors"
        save_file({"w": torch.zeros(1)}, str(path), metadata={"pad": "x" * pad})
        assert not looks_like_pickle(path)
    pickled = tmp_path / "p.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    assert looks_like_pickle(pickled)


def test_run_names_keep_letters_of_any_script_apart():
    from model.api import default_checkpoint_path

    names = {default_checkpoint_path(name, "cpu").name
             for name in ("日本.txt", "中文.txt", "ünï cödé.txt", "a/b?.txt", "नमस्ते.txt")}
    assert names == {"日本.txt-cpu.safetensors", "中文.txt-cpu.safetensors",
                     "ünï-cödé.txt-cpu.safetensors", "a-b-.txt-cpu.safetensors",
                     "नमस्ते.txt-cpu.safetensors"}  # combining signs stay in the word
    assert default_checkpoint_path("...", "cpu").name == "corpus-cpu.safetensors"
    # a name typed composed and one read from macOS (decomposed) are one run
    assert default_checkpoint_path("cafe\u0301.txt", "cpu") == default_checkpoint_path(
        "caf\u00e9.txt", "cpu")


def test_a_run_saved_under_the_older_ascii_name_goes_on_there():
    from model.api import default_checkpoint_path

    older = default_checkpoint_path("caf.txt", "cpu").with_name("caf-.txt-cpu.safetensors")
    assert default_checkpoint_path("café.txt", "cpu").name == "café.txt-cpu.safetensors"
    Session.open(None, preset="tiny", device="cpu").save(older)
    assert default_checkpoint_path("café.txt", "cpu") == older
