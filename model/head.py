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
        # a tensor, not .item(): on a GPU that would stall the stream once per step
        denom = valid.sum().clamp(min=1).float()  # ()
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if want_w else None
        for lo in range(0, h.shape[0], chunk_size):
            hc = h[lo:lo + chunk_size].to(dtype)  # (n, C)
            tc = targets[lo:lo + chunk_size]  # (n,)
            vc = valid[lo:lo + chunk_size]  # (n,)
            logits = (hc @ w.t()).float()  # (n, Vp)
            logits[:, vocab_size:] = float("-inf")  # padded ids never get probability
            rows = torch.arange(hc.shape[0], device=h.device)
            safe_t = tc.clamp(min=0)  # (n,)
            target_logit = logits[rows, safe_t]  # (n,)
            peak = logits.max(dim=1, keepdim=True).values  # (n, 1)
            probs = logits.sub_(peak).exp_()  # (n, Vp), in place: the logits are spent
            total = probs.sum(dim=1, keepdim=True)  # (n, 1)
            lse = total.log() + peak  # (n, 1)
            loss += ((lse.squeeze(1) - target_logit) * vc).sum()
            if not (want_h or want_w):
                continue
            # d loss / d logits = (softmax - onehot(target)) / n_valid, zero on ignored rows
            scale = vc.float() / denom  # (n,)
            probs.mul_(scale.unsqueeze(1) / total)
            probs[rows, safe_t] -= scale
            dlogits = probs.to(dtype)  # (n, Vp)
            if grad_h is not None:
                grad_h[lo:lo + chunk_size] = (dlogits @ w).to(h.dtype)  # (n, C)
            if grad_w is not None:
                if dlogits.dtype == grad_w.dtype:
                    grad_w.addmm_(dlogits.t(), hc)  # (Vp, C), in place: no weight-sized temporary
                else:
                    grad_w += dlogits.t() @ hc  # (Vp, C), bf16 products summed in float32
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss / denom

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        if grad_h is not None:
            grad_h = grad_h * grad_output.to(grad_h.dtype)
        if grad_w is not None:
            grad_w = (grad_w * grad_output).to(ctx.weight_dtype)
        return grad_h, grad_w, None, None, None, None, None


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
        compute_dtype: matmul dtype (bf16 under CUDA autocast); defaults to h's dtype.

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
