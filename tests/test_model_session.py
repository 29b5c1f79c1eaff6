"""Session on the bundled corpus with the tiny preset: training, probing, nudging, sampling."""

import math
import subprocess
import sys
import threading

import pytest

from model.api import ConfigError, DeviceError, Session

V = 100_277


@pytest.fixture(scope="module")
def fresh():
    """An untrained tiny session; tests that train make their own."""
    return Session.open(None, preset="tiny", device="cpu", seed=0)


def test_untrained_model_is_uniform_over_the_real_vocab(fresh):
    probe = fresh.probe(100, 8, k=5)
    assert probe.vocab_size == V == fresh.info().vocab_size
    assert len(probe.top) == 5 and probe.top[0].prob >= probe.top[-1].prob
    assert probe.label.prob == pytest.approx(1 / V, rel=0.5)
    assert probe.loss == pytest.approx(math.log(V), abs=0.3)
    assert probe.entropy == pytest.approx(math.log(V), abs=0.05)
    assert 1 <= probe.label_rank <= V
    assert probe.label.token_id == fresh.token_ids(108, 109)[0]


def test_long_context_keeps_the_last_block_size_tokens(fresh):
    probe = fresh.probe(0, 40)
    assert probe.context_ids == tuple(fresh.token_ids(24, 40))
    assert fresh.probe_ids(fresh.token_ids(0, 40)).top == probe.top


def test_surprise_has_one_loss_per_position(fresh):
    losses = fresh.surprise(10, 40)  # longer than block_size: scored block by block
    assert len(losses) == 40 and all(9 < x < 14 for x in losses)
    assert losses[-1] == pytest.approx(fresh.probe(10, 40).loss, abs=0.5)


def test_sampling_is_seeded_and_greedy_at_zero(fresh):
    ids = fresh.token_ids(0, 10)
    a = fresh.sample(ids, temperature=1.0, top_p=0.5, seed=7)
    assert a == fresh.sample(ids, temperature=1.0, top_p=0.5, seed=7)
    greedy = fresh.sample(ids, temperature=0)
    assert greedy.token == fresh.probe_ids(ids, k=1).top[0]
    top3 = fresh.sample(ids, top_k=3, seed=1, k_shown=10)
    assert len(top3.top) == 3 and top3.token in top3.top
    assert len(fresh.generate(ids, 3, seed=1)) == 3


UNUSED = 100_262  # an id of cl100k_base that names no bytes


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 0}, {"temperature": 50.0},
                                    {"top_k": 3}, {"top_p": 0.9}])
def test_an_id_that_is_no_token_is_shown_but_never_drawn(fresh, monkeypatch, kwargs):
    import torch

    import model.sample

    def peaked_on_unused(model, context, device):  # an untrained net may rank it first
        probs = torch.full((V,), 0.1 / (V - 1))
        probs[UNUSED] = 0.9
        return probs

    monkeypatch.setattr(model.sample, "next_token_probs", peaked_on_unused)
    probe = fresh.probe_ids([1, 2, 3], UNUSED, k=3)
    assert (probe.top[0].token_id, probe.top[0].text) == (UNUSED, "<unused>")
    assert probe.label.text == "<unused>"
    picks = fresh.generate([1, 2, 3], 5, seed=3, **kwargs)
    assert all(p.token.token_id < 100_256 for p in picks)
    assert all(t.token_id != UNUSED for p in picks for t in p.top)
    assert "<unused>" not in fresh.decode([p.token.token_id for p in picks])


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0.0}])
def test_bad_sampling_settings(fresh, kwargs):
    with pytest.raises(ConfigError):
        fresh.sample([1, 2], **kwargs)


def test_out_of_range_ids_and_windows(fresh):
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        fresh.probe_ids([V])
    with pytest.raises(ConfigError):
        fresh.probe(fresh.n_tokens - 2, 5)
    assert fresh.probe(fresh.n_tokens - 3, 3).label is None


def test_random_window_fits(fresh):
    for _ in range(50):
        start = fresh.random_window(16)
        assert 0 <= start and start + 16 < fresh.n_tokens


def test_chunks_are_plain_records(fresh):
    chunks = fresh.chunks(0, 5)
    assert [c.token_id for c in chunks] == fresh.token_ids(0, 5)
    assert fresh.decode(fresh.encode("hello world")) == "hello world"


def test_cuda_missing_is_a_device_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="use --device cpu"):
        Session.open(None, preset="tiny", device="cuda")


def test_importing_the_api_does_not_import_torch_or_ui():
    code = "import sys, model.api; print(sorted({'torch','textual','rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_probe_beside_a_step_sees_the_weights_of_one_step(tmp_path):
    # The app's looker probes a new window while the worker's step runs; the probe may
    # overlap the forward and backward passes, never the update that changes the weights.
    session = Session.open(preset="tiny", device="cpu", seed=0,
                           checkpoint=str(tmp_path / "run.safetensors"))
    assert session.probes_beside_steps
    for _ in range(3):  # past the first, tiny learning rates of the warmup
        session.step()
    optimizer = session._trainer.optimizer
    in_update, release = threading.Event(), threading.Event()
    real_step = optimizer.step

    def held_step(*args, **kwargs):
        in_update.set()
        release.wait(30)
        return real_step(*args, **kwargs)

    optimizer.step = held_step
    before = session.probe(5, 8, k=3)
    stepper = threading.Thread(target=session.step, daemon=True)
    stepper.start()
    assert in_update.wait(60)
    beside = []
    prober = threading.Thread(target=lambda: beside.append(session.probe(5, 8, k=3)),
                              daemon=True)
    prober.start()
    prober.join(0.5)  # unguarded, it would be done by now, with the old weights
    release.set()
    stepper.join(60)
    prober.join(60)
    after = session.probe(5, 8, k=3)
    assert after.label.prob != before.label.prob
    assert beside == [after]


def test_no_probes_beside_steps_with_dropout(tmp_path):
    # the probe's switch to eval mode would turn dropout off in the step's forward pass
    session = Session.open(preset="tiny", device="cpu", seed=0, overrides={"dropout": 0.1},
                           checkpoint=str(tmp_path / "run.safetensors"))
    assert not session.probes_beside_steps


def test_a_probe_that_runs_out_of_memory_leaves_the_steps_gradients(tmp_path, monkeypatch):
    # a probe beside a step must not drop the gradients that step is making
    import torch

    import model.sample

    session = Session.open(preset="tiny", device="cpu", seed=0,
                           checkpoint=str(tmp_path / "run.safetensors"))
    weight = session._trainer.model.lm_weight
    weight.grad = torch.ones_like(weight)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model.sample, "next_token_probs", out_of_memory)
    with pytest.raises(DeviceError, match="ran out of memory during a probe"):
        session.probe(5, 8)
    assert weight.grad is not None and bool((weight.grad == 1).all())


def test_a_negative_seed_is_refused_before_the_slow_work():
    with pytest.raises(ConfigError, match="seed must be 0 or more, got -1"):
        Session.open(None, preset="tiny", device="cpu", seed=-1)


def test_a_model_too_big_to_train_live_on_the_cpu_says_so():
    big = Session.open(None, preset="cpu", device="cpu", overrides={"batch_size": 256})
    assert big.slow_warning == (
        "a batch of 256 windows is big for a CPU: a step is 1.3 TFLOP of work, 16x the cpu"
        " preset's, so each takes seconds to minutes here (--preset cpu trains live)")
    assert Session.open(None, preset="cpu", device="cpu").slow_warning is None


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_the_system_kills_it():
    from model.api import DeviceError

    session = Session.open(None, preset="tiny", device="cpu",
                           overrides={"batch_size": 100_000_000})
    with pytest.raises(DeviceError, match=r"^a batch of 100,000,000 windows of 16 tokens needs"
                                          r" over [\d,.]+ GiB to train, more than the [\d,.]+ GiB"
                                          r" of cpu: use a smaller --batch-size$"):
        session.step()
    assert session.step_count == 0 and session.probe(0, 8).label is not None  # still usable
    assert Session.open(None, preset="tiny", device="cpu").step().step == 1


def test_a_containers_memory_limit_counts_as_the_machines_memory(monkeypatch):
    import builtins
    import io

    import torch

    from model.device import memory_size

    real_open = builtins.open
    limit = 3 * 2**30

    def cgroup_open(path, *args, **kwargs):
        if str(path) == "/sys/fs/cgroup/memory.max":
            return io.StringIO(f"{limit}\n")
        if str(path) == "/sys/fs/cgroup/memory/memory.limit_in_bytes":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", cgroup_open)
    assert memory_size(torch.device("cpu")) == limit
    limit = "max"  # cgroup v2 with no limit: the RAM
    assert memory_size(torch.device("cpu")) > 0 and memory_size(torch.device("meta")) is None


def _huge_torch_tensor(*args, **kwargs):
    import torch

    return torch.empty(2**60, dtype=torch.uint8)  # the CPU allocator's own RuntimeError


def _huge_numpy_array(*args, **kwargs):
    import numpy as np

    return np.empty(2**60, dtype=np.uint8)  # numpy's MemoryError, as a huge batch raises


@pytest.mark.parametrize("allocate", [_huge_torch_tensor, _huge_numpy_array])
def test_a_cpu_allocation_that_fails_is_out_of_memory(tmp_path, monkeypatch, allocate):
    from model.data import Windows

    session = Session.open(preset="tiny", device="cpu", seed=0,
                           checkpoint=str(tmp_path / "run.safetensors"))
    monkeypatch.setattr(Windows, "batch", allocate)
    with pytest.raises(DeviceError, match="cpu ran out of memory during a training step; the"
                                          " model is kept: use a smaller --batch-size"):
        session.step()
    assert session.step_count == 0


def test_a_model_too_big_for_memory_says_which_settings_to_shrink(monkeypatch):
    import model.train

    monkeypatch.setattr(model.train.Trainer, "__init__", _huge_torch_tensor)
    with pytest.raises(DeviceError, match=r"cpu ran out of memory building the model: use a"
                                          r" smaller --n-layer \(now 1\) or --n-embd \(now 32\)"):
        Session.open(None, preset="tiny", device="cpu")


def test_other_runtime_errors_are_not_taken_for_out_of_memory(tmp_path, monkeypatch):
    from model.data import Windows

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    session = Session.open(preset="tiny", device="cpu", seed=0,
                           checkpoint=str(tmp_path / "run.safetensors"))
    monkeypatch.setattr(Windows, "batch", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        session.step()
