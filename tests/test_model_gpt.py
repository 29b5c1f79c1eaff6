"""The GPT's shapes, its tied and padded head, and the config rules."""

import math

import pytest
import torch

from model.config import PRESETS, GPTConfig, build_config
from model.errors import ConfigError
from model.gpt import GPT, padded_vocab

SMALL = GPTConfig(vocab_size=1000, block_size=16, n_layer=1, n_head=2, n_embd=32)


def test_shapes_and_padding():
    torch.manual_seed(0)
    model = GPT(SMALL)
    idx = torch.randint(0, 1000, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 1000) and loss is None  # real vocab only, never the padding
    assert model.lm_weight.shape == (padded_vocab(1000), 32) == (1024, 32)
    _, loss = model(idx, torch.randint(0, 1000, (3, 16)))
    assert loss.shape == () and math.isclose(loss.item(), math.log(1000), rel_tol=0.05)
    assert model.position_losses(idx, idx).shape == (3, 16)


def test_fused_and_plain_heads_agree_through_the_model():
    torch.manual_seed(0)
    model = GPT(SMALL)
    idx, targets = torch.randint(0, 1000, (2, 16)), torch.randint(0, 1000, (2, 16))
    grads = []
    for fused in (True, False):
        model.zero_grad()
        _, loss = model(idx, targets, fused=fused, head_chunk=5)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("path", ["fused", "plain", "logits"])
def test_sparse_embedding_gradient_equals_the_dense_one(path, monkeypatch):
    # the token embedding sends a sparse gradient; the tied matrix's .grad must still be a
    # dense tensor (AdamW needs one) equal to what a dense embedding gradient gives
    idx, targets = torch.randint(0, 1000, (2, 16)), torch.randint(0, 1000, (2, 16))

    def grads():
        torch.manual_seed(0)
        model = GPT(SMALL)
        if path == "logits":  # the nudge's path: last-position logits, no targets
            logits, _ = model(idx)
            loss = logits.log_softmax(-1)[:, 7].sum()
        else:
            _, loss = model(idx, targets, fused=path == "fused", head_chunk=5)
        loss.backward()
        return model.lm_weight.grad

    sparse = grads()
    dense_embedding = torch.nn.functional.embedding
    monkeypatch.setattr(torch.nn.functional, "embedding",
                        lambda i, w, *a, sparse=False, **k: dense_embedding(i, w, *a, **k))
    dense = grads()
    assert sparse.layout == dense.layout == torch.strided
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-7)
    assert sparse[idx.flatten()].abs().sum() > 0


def test_one_window_logits_match_the_plain_product():
    # one row runs as a batch of row blocks on the CPU; it must be the same product
    torch.manual_seed(0)
    model = GPT(SMALL)
    idx = torch.randint(8, 1000, (1, 16))  # no 7: row 7 then gets only the head's gradient
    logits, _ = model(idx)
    last = model.hidden(idx)[:, -1, :]  # (1, C)
    exact = last.double() @ model.lm_weight[:1000].double().t()
    assert logits.shape == (1, 1000)
    torch.testing.assert_close(logits.double(), exact, rtol=1e-5, atol=1e-6)
    logits[0, 7].backward()  # the nudge's gradient flows through the blocks to the weight
    torch.testing.assert_close(model.lm_weight.grad[7], last[0].detach(), rtol=1e-5, atol=1e-6)


def test_longer_than_block_size_is_refused():
    with pytest.raises(ValueError):
        GPT(SMALL)(torch.zeros(1, 17, dtype=torch.long))


def test_presets_are_valid_and_tiny_is_tiny():
    for name in PRESETS:
        build_config(name, 100_277)
    gpt, _ = build_config("tiny", 100_277)
    assert (gpt.n_layer, gpt.n_embd, gpt.block_size) == (1, 32, 16)


def test_overrides_apply_to_both_configs():
    gpt, train = build_config("cpu", 500, {"block_size": "8192", "n_layer": 2, "batch_size": 3,
                                           "learning_rate": 1e-3})
    assert (gpt.block_size, gpt.n_layer, gpt.vocab_size) == (8192, 2, 500)
    assert (train.batch_size, train.learning_rate) == (3, 1e-3)


def test_a_new_peak_lr_keeps_the_presets_decay_ratio():
    _, preset = build_config("cpu", 500)
    _, low = build_config("cpu", 500, {"learning_rate": "1e-5"})  # below the preset's floor
    assert low.min_lr == pytest.approx(1e-5 * preset.min_lr / preset.learning_rate)
    _, both = build_config("cpu", 500, {"learning_rate": 1e-2, "min_lr": 5e-3})
    assert both.min_lr == 5e-3
    with pytest.raises(ConfigError, match="must not exceed"):
        build_config("cpu", 500, {"learning_rate": 1e-3, "min_lr": 1e-2})


@pytest.mark.parametrize("overrides", [
    {"block_size": 0}, {"block_size": 8193}, {"batch_size": 0}, {"learning_rate": -1.0},
    {"learning_rate": float("nan")}, {"n_embd": 100, "n_head": 3}, {"n_layer": 0},
    {"bogus": 1}, {"batch_size": 2.5}, {"block_size": "lots"},
])
def test_bad_settings_raise_one_line(overrides):
    with pytest.raises(ConfigError) as err:
        build_config("tiny", 100_277, overrides)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("huge", 100)
