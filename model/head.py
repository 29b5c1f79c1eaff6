"""The output layer fused with cross-entropy, chunk by chunk, so all logits never exist."""

from __future__ import annotations

import torch


class FusedHeadLoss(torch.autograd.Function):
    """Mean cross-entropy of softmax(h @ weight.T) over the real vocab, chunked over positions.

    The (N, V) logits never exist at once: each chunk of positions makes its own (n, V)
    logits, reduces them to a loss and, when a gradient is wanted, turns them straight into
    the gradients for h and weight. Doing the backward work inside forward (as Liger does)
    costs three matmuls per chunk instead of the four that recomputing in backward needs;
    backward then only scales the stored gradients by grad_output.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, vocab_size, chunk_size, compute_dtype, want_grad):
        # h (N, C), weight (Vp, C) with Vp >= vocab_size padded rows, targets (N,) with -1 = ignore
        # needs_input_grad stays True under no_grad, so the caller says whether grads are wanted.
        want_h = want_grad and ctx.needs_input_grad[0]
        want_w = want_grad and ctx.needs_input_grad[1]
        dtype = compute_dtype or h.dtype
        w = weight.to(dtype)  # (Vp, C)
        valid = targets >= 0  # (N,)
        safe = targets.clamp(min=0)  # (N,)
        # a tensor, not .item(): on a GPU that would stall the stream once per step
        denom = valid.sum().clamp(min=1).float()  # ()
        scale = valid.float() / denom  # (N,) d loss / d row loss; 0 on ignored rows
        losses = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)  # (N,)
        grad_h = torch.empty_like(h) if want_h else None
        wide = torch.float64 if dtype == torch.float64 else torch.float32
        # written by the first chunk, so no zero fill; zeros only when there is no chunk at all
        grad_w = ((torch.empty if h.shape[0] else torch.zeros)(
            weight.shape, dtype=wide, device=h.device) if want_w else None)
        # One logits buffer for every chunk: a fresh 100 MB tensor per chunk would be mapped
        # and zero-filled by the kernel each time unless glibc's allocator is tuned.
        # - float32 (float64) products: softmax and gradient in that buffer, in place.
        # - bf16 products on the CPU: the same, in bf16. Torch's CPU softmax sums in float32,
        #   so only the stored probabilities round (loss within ~1e-4 nats of float64), and
        #   the pass moves a third of the bytes that a float32 copy would (bench/README.md).
        # - bf16 products elsewhere (CUDA autocast): softmax in a float32 buffer, as there
        #   torch's fused softmax kernels make the copy cheap.
        n_max, Vp = min(chunk_size, h.shape[0]), weight.shape[0]
        out = torch.empty((n_max, Vp), dtype=dtype if _narrow_softmax(h.device) else wide,
                          device=h.device)
        narrow = None if dtype == out.dtype else torch.empty(
            (n_max, Vp), dtype=dtype, device=h.device)
        for lo in range(0, h.shape[0], chunk_size):
            hi = min(lo + chunk_size, h.shape[0])
            hc = h[lo:hi].to(dtype)  # (n, C)
            tc = safe[lo:hi]  # (n,)
            if narrow is None:
                logits = torch.mm(hc, w.t(), out=out[: hi - lo])  # (n, Vp)
            else:
                logits = out[: hi - lo].copy_(torch.mm(hc, w.t(), out=narrow[: hi - lo]))
            logits[:, vocab_size:] = float("-inf")  # padded ids never get probability
            rows = torch.arange(hi - lo, device=h.device)
            probs, losses[lo:hi] = _softmax_and_losses_(logits, rows, tc, hc, w[:vocab_size])
            if not (want_h or want_w):
                continue
            # d loss / d logits = (softmax - onehot(target)) * scale
            sc = scale[lo:hi].unsqueeze(1)  # (n, 1)
            row_scale = None
            if narrow is not None:
                # one pass scales and narrows; the onehot is taken off while still wide
                probs[rows, tc] -= 1.0
                dlogits = torch.mul(probs, sc, out=narrow[: hi - lo])  # (n, Vp)
            else:
                # the scale goes on the small (n, C) sides: a pass over (n, Vp) saved, 15 ms
                # of the 440 a 512-position float32 chunk takes on a Zen 3 (bench/README.md)
                probs[rows, tc] -= 1.0
                dlogits, row_scale = probs, sc  # (n, Vp), (n, 1)
            if grad_h is not None:
                g = dlogits @ w  # (n, C)
                grad_h[lo:hi] = (g if row_scale is None else g.to(wide) * row_scale).to(h.dtype)
            if grad_w is not None:
                hs = hc if row_scale is None else (h[lo:hi].to(wide) * row_scale).to(dtype)
                _add_weight_grad_(grad_w, dlogits, hs, first=lo == 0)
        # Plain attributes, not save_for_backward: backward hands these tensors on and drops
        # its own reference, so autograd can add the embedding's gradient into them in place.
        ctx.grads = (grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return torch.where(valid, losses, 0.0).sum() / denom

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.grads is None:
            raise RuntimeError("the fused head's backward runs once; its gradients are spent")
        (grad_h, grad_w), ctx.grads = ctx.grads, None
        if grad_h is not None:
            grad_h.mul_(grad_output.to(grad_h.dtype))
        if grad_w is not None:
            grad_w = grad_w.mul_(grad_output).to(ctx.weight_dtype)
        return grad_h, grad_w, None, None, None, None, None


# Vocab rows per weight-gradient product on the CPU: a (8192, C) bf16 block stays in cache
# until it is widened into the float32 gradient; one weight-sized product would go to memory
# and back, and making its rows in blocks also ran faster (bench/README.md, note 1).
_CPU_VOCAB_BLOCK = 8192


def _add_weight_grad_(grad_w, dlogits, hs, first):
    """grad_w (Vp, C) float32 (or float64) = (first) or += dlogits.t() @ hs.

    Args:
        grad_w: the weight gradient, written by the first chunk and added to after.
        dlogits: (n, Vp) d loss / d logits of one chunk (rows may still need hs's scale).
        hs: (n, C) the chunk's hidden states, in dlogits' dtype.
        first: whether this is the first chunk.
    """
    if dlogits.dtype == grad_w.dtype:
        if first:
            torch.mm(dlogits.t(), hs, out=grad_w)
        else:
            grad_w.addmm_(dlogits.t(), hs)  # in place: no weight-sized temporary
        return
    # narrower products, summed in float32
    Vp = grad_w.shape[0]
    block = _CPU_VOCAB_BLOCK if grad_w.device.type == "cpu" else Vp
    part = torch.empty((min(block, Vp), hs.shape[1]), dtype=dlogits.dtype, device=hs.device)
    for lo in range(0, Vp, block):
        hi = min(lo + block, Vp)
        prod = torch.mm(dlogits[:, lo:hi].t(), hs, out=part[: hi - lo])  # (hi-lo, C)
        if first:
            grad_w[lo:hi].copy_(prod)
        else:
            grad_w[lo:hi].add_(prod)


def _narrow_softmax(device: torch.device) -> bool:
    """Whether bf16 products keep their softmax in bf16 (the CPU) or copy it to float32."""
    return device.type == "cpu"


def _softmax_and_losses_(logits, rows, targets, hc, w):
    """Softmax over dim 1 in place, and each row's loss -log p(target).

    Args:
        logits: (n, Vp) float32 (or bf16 on the CPU), overwritten by the probabilities.
        rows: arange(n); targets: (n,) ids; hc (n, C) and w (V, C) give the logits again.

    Returns:
        (probs (n, Vp), float32 losses (n,)).
    """
    if logits.device.type == "cpu":
        # torch's softmax row kernel makes one pass where max/sub/exp/sum/div made five over
        # 100 MB (bench/train_step.py); it reads each row before writing it, so out= may alias.
        probs = torch.ops.aten._softmax.out(logits, 1, False, out=logits)
        p_target = probs[rows, targets].float()  # (n,)
        losses = -p_target.log()
        # below float32's smallest normal p has lost digits (loss > ~87 nats): redo those
        # rows from their logits; .any() syncs, which costs nothing on the CPU
        tiny = p_target < torch.finfo(probs.dtype).tiny
        if tiny.any():
            redo = rows[tiny]
            exact = (hc[redo] @ w.t()).float()  # (r, V)
            losses[redo] = exact.logsumexp(dim=1) - exact[torch.arange(len(redo)), targets[redo]]
        return probs, losses
    # Elsewhere the in-place kernels, which need no host sync and no second (n, Vp) buffer.
    target_logit = logits[rows, targets]  # (n,)
    peak = logits.amax(dim=1, keepdim=True)  # (n, 1)
    probs = logits.sub_(peak).exp_()  # (n, Vp)
    total = probs.sum(dim=1, keepdim=True)  # (n, 1)
    probs.div_(total)
    return probs, (total.log() + peak).squeeze(1) - target_logit


def fused_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    vocab_size: int,
    chunk_size: int = 256,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the tied output head, without materializing all logits.

    Args:
        h: final hidden states, (N, C).
        weight: the output (token embedding) matrix, (Vp, C); rows >= vocab_size are padding.
        targets: next-token ids, (N,); -1 marks positions to ignore.
        vocab_size: the real vocabulary size; padded logits are excluded from the softmax.
        chunk_size: positions per chunk: memory is chunk_size * Vp floats.
        compute_dtype: matmul dtype (bf16 under CUDA autocast, and on CPUs with bf16 dot
            products); defaults to h's dtype. The loss and gradients come back in float32;
            on the CPU the bf16 softmax is summed in float32 but stored in bf16.

    Returns:
        A scalar float32 loss with gradients for h and weight.
    """
    want_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return FusedHeadLoss.apply(
        h, weight, targets, vocab_size, chunk_size, compute_dtype, want_grad)


def plain_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """The reference head: full (N, V) logits and F.cross_entropy; used by tests and benchmarks.

    Args:
        h: final hidden states, (N, C).
        weight: the output matrix, (Vp, C).
        targets: next-token ids, (N,); -1 marks positions to ignore.
        vocab_size: the real vocabulary size.

    Returns:
        The scalar mean loss.
    """
    logits = h @ weight[:vocab_size].t()  # (N, V)
    return torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-1)
