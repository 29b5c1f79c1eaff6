"""The fused chunked head gives the plain head's loss and gradients without full logits."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model import head
from model.gpt import padded_vocab
from model.head import fused_cross_entropy, plain_cross_entropy


def _inputs(n, c, v, seed=0, ignore=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, c, generator=g).to(dtype).requires_grad_()
    w = torch.randn(padded_vocab(v), c, generator=g) * 0.5
    w[v:] = torch.randn(padded_vocab(v) - v, c, generator=g) * 5  # padding must not leak
    w = w.to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    targets[:ignore] = -1
    return h, w, targets


def _loss_and_grads(fn, h, w):
    h.grad = w.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), h.grad.clone(), w.grad.clone()


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_fused_matches_plain_fp32(chunk):
    h, w, t = _inputs(50, 16, 300, ignore=3)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 300, chunk), h, w)
    plain = _loss_and_grads(lambda: plain_cross_entropy(h, w, t, 300), h, w)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-5, atol=1e-6)
    assert fused[2][300:].abs().max() == 0  # padded rows get no gradient


def test_fused_matches_plain_bf16():
    h, w, t = _inputs(40, 32, 500, seed=1, dtype=torch.bfloat16)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 500, 16), h, w)
    plain = _loss_and_grads(lambda: plain_cross_entropy(h, w, t, 500), h, w)
    assert fused[1].dtype == fused[2].dtype == torch.bfloat16
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-3)


def _float64_reference(h, w, t, v):
    h64 = h.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    return _loss_and_grads(
        lambda: torch.nn.functional.cross_entropy(h64 @ w64[:v].t(), t, ignore_index=-1),
        h64, w64)


@pytest.mark.parametrize(("chunk", "vocab_block"), [(5, 8192), (64, 8192), (5, 96), (64, 96)])
def test_bf16_matmuls_on_float32_weights_match_float64(chunk, vocab_block, monkeypatch):
    # the CPU training path: float32 weights, bf16 products, float32 softmax and gradients;
    # a block of 96 rows makes the weight gradient in 8 blocks, the last one 32 rows
    monkeypatch.setattr(head, "_CPU_VOCAB_BLOCK", vocab_block)
    h, w, t = _inputs(48, 64, 700, seed=3, ignore=2)
    fused = _loss_and_grads(
        lambda: fused_cross_entropy(h, w, t, 700, chunk, torch.bfloat16), h, w)
    exact = _float64_reference(h, w, t, 700)
    assert fused[1].dtype == fused[2].dtype == torch.float32
    for a, b in zip(fused, exact):
        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2 * b.abs().max().item())
    assert fused[2][700:].abs().max() == 0  # padded rows get no gradient
    # bf16 is an approximation, but of the same thing: far closer to float64 than a wrong
    # target or a missing scale would be
    wrong = _float64_reference(h, w, t.roll(1), 700)
    assert (fused[2].double() - exact[2]).norm() < 0.05 * (wrong[2] - exact[2]).norm()


def test_bf16_products_with_a_float32_softmax_match_float64(monkeypatch):
    # the CUDA autocast path (bf16 products copied into a float32 softmax buffer), run here
    monkeypatch.setattr(head, "_narrow_softmax", lambda device: False)
    h, w, t = _inputs(48, 64, 700, seed=5, ignore=2)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 700, 16, torch.bfloat16), h, w)
    exact = _float64_reference(h, w, t, 700)
    for a, b in zip(fused, exact):
        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2 * b.abs().max().item())
    assert fused[2][700:].abs().max() == 0


def test_float64_inputs_stay_float64_exact():
    h, w, t = _inputs(20, 8, 300, seed=4, dtype=torch.float64)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 300, 7), h, w)
    exact = _float64_reference(h, w, t, 300)
    assert fused[1].dtype == torch.float64
    torch.testing.assert_close(fused[0].double(), exact[0], rtol=1e-6, atol=0)  # float32 loss
    for a, b in zip(fused[1:], exact[1:]):
        # float64 products; only the float32 1/N scale rounds (~1e-8), where a float32
        # path would be off by ~1e-6
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7 * b.abs().max().item())


def test_fused_with_real_cl100k_vocab_size():
    v = 100_277
    h, w, t = _inputs(6, 8, v, seed=2)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, v, 4), h, w)
    plain = _loss_and_grads(lambda: plain_cross_entropy(h, w, t, v), h, w)
    exact = _float64_reference(h, w, t, v)
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-6, atol=0)
    for a, b, e in zip(fused[1:], plain[1:], exact[1:]):
        # A float32 sum of 100,277 terms is off by up to ~4e-5 of the largest gradient, in
        # the plain head too (12 seeds: 0.7-3.2e-5); the fused head scales its rows after
        # the products, so it rounds differently, not worse.
        scale = e.abs().max().item()
        torch.testing.assert_close(a.double(), e, rtol=0, atol=5e-5 * scale)
        torch.testing.assert_close(a, b, rtol=0, atol=5e-5 * scale)


def test_no_grad_gives_the_same_loss():
    h, w, t = _inputs(20, 8, 100)
    with torch.no_grad():
        quiet = fused_cross_entropy(h, w, t, 100, 8)
    assert quiet.item() == pytest.approx(plain_cross_entropy(h, w, t, 100).item(), rel=1e-6)


def test_all_ignored_gives_zero_loss_and_gradient():
    h, w, t = _inputs(5, 4, 50, ignore=5)
    loss, gh, gw = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 50), h, w)
    assert loss.item() == 0 and gh.abs().max() == 0 and gw.abs().max() == 0


def test_grad_output_scales_the_gradients():
    h, w, t = _inputs(10, 4, 70)
    _, gh1, gw1 = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, 70, 3), h, w)
    _, gh3, gw3 = _loss_and_grads(lambda: 3 * fused_cross_entropy(h, w, t, 70, 3), h, w)
    torch.testing.assert_close(gh3, 3 * gh1)
    torch.testing.assert_close(gw3, 3 * gw1)


def test_backward_runs_once():
    # backward hands its stored gradients on, so a second backward must refuse, not reuse them
    h, w, t = _inputs(10, 4, 70)
    loss = fused_cross_entropy(h, w, t, 70, 3)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="runs once"):
        loss.backward()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 24), c=st.integers(1, 12), v=st.integers(2, 200), chunk=st.integers(1, 30),
       seed=st.integers(0, 10_000))
def test_fused_matches_plain_for_any_shape(n, c, v, chunk, seed):
    h, w, t = _inputs(n, c, v, seed=seed)
    fused = _loss_and_grads(lambda: fused_cross_entropy(h, w, t, v, chunk), h, w)
    plain = _loss_and_grads(lambda: plain_cross_entropy(h, w, t, v), h, w)
    assert math.isfinite(fused[0].item())
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_under_cuda_bf16_autocast():
    h, w, t = (x.cuda() if x.dtype == torch.long else x.detach().cuda().requires_grad_()
               for x in _inputs(256, 64, 5000, seed=3))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = _loss_and_grads(
            lambda: fused_cross_entropy(h, w, t, 5000, 64, torch.bfloat16), h, w)
    plain = _loss_and_grads(lambda: plain_cross_entropy(h, w, t, 5000), h, w)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a.float(), b.float(), rtol=3e-2, atol=3e-3)
