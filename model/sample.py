"""Next-token probabilities for one context, and drawing a token from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.errors import ConfigError
from model.gpt import GPT


@dataclass(frozen=True)
class Distribution:
    """The plain-number view of one next-token distribution (ids, no text yet)."""

    top_ids: list[int]
    top_probs: list[float]
    label_prob: float | None
    label_rank: int | None
    entropy: float
    loss: float | None


@torch.no_grad()
def next_token_probs(model: GPT, context_ids: list[int], device: torch.device) -> torch.Tensor:
    """Exact softmax over the real vocab for the token after a context.

    Args:
        model: the network.
        context_ids: the context; only its last block_size ids are used. Not empty: the
            model has no answer for nothing, and a made-up uniform one would pass for its own.
        device: the model's device.

    Returns:
        (V,) float32 probabilities.

    Raises:
        ConfigError: the context is empty.
    """
    if not context_ids:
        raise ConfigError("the context is empty: give at least one token to predict from")
    context_ids = context_ids[-model.config.block_size:]
    idx = torch.tensor([context_ids], dtype=torch.long, device=device)  # (1, T)
    model.eval()
    logits, _ = model(idx)  # (1, V)
    return torch.softmax(logits[0].float(), dim=-1).cpu()  # (V,)


def describe(probs: torch.Tensor, label: int | None, k: int) -> Distribution:
    """Top-k, the label's probability and rank, entropy and loss of a distribution.

    Args:
        probs: (V,) probabilities.
        label: the true next id, or None.
        k: how many of the most likely ids to list.

    Returns:
        A Distribution of plain numbers.
    """
    top = torch.topk(probs, min(max(k, 0), probs.numel()))
    logp = torch.log(probs.clamp_min(1e-45))  # (V,), clamped: 0 * log 0 counts as 0
    entropy = -(probs * logp).sum().item()
    label_prob = label_rank = loss = None
    if label is not None:
        p = probs[label]
        label_prob = p.item()
        # rank 1 = most likely; ties go in the label's favour
        label_rank = int((probs > p).sum().item()) + 1
        loss = -logp[label].item()
    return Distribution(top.indices.tolist(), top.values.tolist(), label_prob, label_rank,
                        entropy, loss)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ConfigError for sampling settings that mean nothing."""
    if not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be 0 or more, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1 (or unset for all tokens), got {top_k}")
    if top_p is not None and not (0.0 < top_p <= 1.0):
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")


def sampling_probs(
    probs: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
    excluded: Sequence[int] = (),
) -> torch.Tensor:
    """The distribution a token is actually drawn from after temperature, top-k and top-p.

    Args:
        probs: (V,) model probabilities.
        temperature: 0 means greedy (all mass on the most likely id).
        top_k: keep only the k most likely ids, or None.
        top_p: keep the smallest set of ids whose mass reaches top_p, or None.
        excluded: ids never drawn (ids that are no token), before top-k and top-p count.

    Returns:
        (V,) probabilities summing to 1.
    """
    check_sampling(temperature, top_k, top_p)
    excluded = torch.tensor(list(excluded), dtype=torch.long)
    if temperature == 0:
        out = torch.zeros_like(probs)
        out[torch.argmax(probs.index_fill(0, excluded, -1.0))] = 1.0
        return out
    logits = torch.log(probs.double().clamp_min(1e-300)) / temperature  # (V,)
    logits.index_fill_(0, excluded, -math.inf)
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = -math.inf
    out = torch.softmax(logits, dim=-1)  # (V,)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = torch.sort(out, descending=True)
        # drop an id when the mass before it already reaches top_p; the first id always stays
        drop = (torch.cumsum(sorted_p, 0) - sorted_p) >= top_p
        out[order[drop]] = 0.0
        out = out / out.sum()
    return out.float()


def draw(probs: torch.Tensor, seed: int | None) -> int:
    """Draw one id; the same seed gives the same id.

    Args:
        probs: (V,) probabilities.
        seed: seeds a private generator, or None for fresh randomness.

    Returns:
        The chosen id.
    """
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return int(torch.multinomial(probs, 1, generator=generator).item())
