"""Training learns, repeats exactly, survives divergence, and the nudge raises the label."""

import math

import pytest
import torch

from model.api import Session, TrainingDiverged
from model.config import TrainConfig
from model.train import lr_at


def _tiny(seed=0):
    return Session.open(None, preset="tiny", device="cpu", seed=seed, overrides={"batch_size": 8})


def test_loss_falls_and_runs_repeat_bit_for_bit():
    a, b = _tiny(), _tiny()
    losses_a = [a.step().loss for _ in range(30)]
    losses_b = [b.step().loss for _ in range(30)]
    assert losses_a == losses_b
    assert sum(losses_a[-5:]) / 5 < sum(losses_a[:5]) / 5 - 1.0
    assert a.evaluate() < math.log(100_277) - 1.0


def test_step_report_is_plain():
    report = _tiny().train(2, eval_every=2)
    assert report.step == 2 and report.val_loss is not None and report.tokens_per_s > 0
    assert all(isinstance(x, (int, float)) for x in (report.loss, report.lr, report.val_loss))


def test_train_checks_should_stop_between_steps():
    seen = []
    last = _tiny().train(10, on_step=seen.append, should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3 and last.step == 3


def test_lr_warms_up_then_decays_to_min():
    cfg = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_steps=10, lr_decay_steps=110)
    lrs = [lr_at(s, cfg) for s in range(200)]
    assert lrs[0] < lrs[5] < lrs[9] <= 1.0
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.55)
    assert lrs[150] == 0.1 and all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_nudge_raises_the_label_and_leaves_adamw_alone():
    session = _tiny()
    session.train(5)
    optimizer = session._trainer.optimizer
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    before = session.probe(500, 12).label.prob
    report = session.nudge(500, 12)
    assert report.before == pytest.approx(before, rel=1e-4)
    assert report.after > report.before
    assert report.after == pytest.approx(session.probe(500, 12).label.prob, rel=1e-4)
    assert report.label.token_id == session.token_ids(512, 513)[0] and session.dirty
    for p, s in optimizer.state.items():
        for k, v in s.items():
            assert torch.equal(v, state[id(p)][k])


def test_a_nudge_never_trains_on_text_held_out_for_validation():
    from model.api import ConfigError

    session = _tiny()
    split = session.info().train_tokens
    weights = first_param(session).clone()
    with pytest.raises(ConfigError, match=f"token {split:,}, is held out for validation"):
        session.nudge(split - 12, 12)  # the label is the first held-out token
    assert torch.equal(first_param(session), weights) and not session.dirty
    assert session.nudge(split - 13, 12).after > 0  # the last label training may see


def first_param(session) -> torch.Tensor:
    return next(session._trainer.model.parameters()).detach()


def test_nan_weights_are_restored_and_reported():
    session = _tiny()
    session.train(1)
    good_at_1 = [first_param(session).clone()]
    session.train(1)
    good = [p.detach().clone() for p in session._trainer.model.parameters()]
    with torch.no_grad():
        session._trainer.model.transformer.h[0].mlp.c_fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"a new run with a lower --lr \(now 0.01\) avoids this"):
        session.step()
    assert all(torch.isfinite(p).all() for p in session._trainer.model.parameters())
    assert math.isfinite(session.probe(0, 8).loss)
    # back to the weights of step 1, kept before the update that made the NaN ones
    assert session.info().step == 1 and torch.equal(good_at_1[0], first_param(session))
    assert session.step().step == 2
    assert any(not torch.equal(a, b) for a, b in zip(good, session._trainer.model.parameters()))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampling_from_nan_weights_says_so(temperature):
    session = _tiny()
    with torch.no_grad():
        session._trainer.model.transformer.h[0].mlp.c_fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="outputs NaN"):
        session.sample([1, 2, 3], temperature=temperature)


def test_reset_returns_to_step_zero():
    session = _tiny()
    first = session.probe(0, 8).top
    session.train(3)
    session.reset()
    assert session.info().step == 0 and session.probe(0, 8).top == first
    assert session.dirty  # the fresh weights are on no disk yet: a quit saves them


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trains_with_bf16_autocast_and_fused_adamw(tmp_path):
    session = Session.open(None, preset="tiny", device="cuda", seed=0)
    assert session._trainer.optimizer.defaults["fused"]
    losses = [session.step().loss for _ in range(30)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    loaded = Session.load(session.save(tmp_path / "g.safetensors"), device="cuda")
    assert loaded.probe(0, 8).top == session.probe(0, 8).top
    assert math.isfinite(loaded.step().loss)
