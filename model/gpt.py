"""The GPT: token and position embeddings, pre-norm transformer blocks, a tied output head."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from model.config import GPTConfig
from model.head import fused_cross_entropy, plain_cross_entropy

VOCAB_MULTIPLE = 64


def padded_vocab(vocab_size: int) -> int:
    """Round the vocab up so the embedding rows are a multiple of 64 (faster matmuls)."""
    return -(-vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and earlier ones."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward layer, 4x wide with GELU."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block; LayerNorm comes before each sublayer (pre-norm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only transformer whose output head shares the token embedding matrix."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.padded_vocab = padded_vocab(config.vocab_size)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(self.padded_vocab, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.apply(self._init_weights)
        # GPT-2's scaled init keeps the residual stream's variance flat as depth grows
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        with torch.no_grad():
            # padded rows are never targets, so zero keeps them inert in the embedding too
            self.transformer.wte.weight[config.vocab_size:].zero_()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def lm_weight(self) -> torch.Tensor:
        """The tied output matrix, (Vp, C)."""
        return self.transformer.wte.weight

    def num_params(self) -> int:
        """Parameters counted once (the head is tied to the embedding)."""
        return sum(p.numel() for p in self.parameters())

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states after the last LayerNorm.

        Args:
            idx: token ids, (B, T) with T <= block_size.

        Returns:
            (B, T, C) hidden states.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        # A sparse gradient (B*T rows) for the tied matrix: autograd adds it into the head's
        # dense one, where a dense embedding gradient would zero-fill and add a second
        # (Vp, C) tensor every step. Every output goes through the head, so .grad stays dense.
        # MPS has no sparse tensors.
        sparse = idx.device.type != "mps"
        tok = F.embedding(idx, self.transformer.wte.weight, sparse=sparse)  # (B, T, C)
        x = tok + self.transformer.wpe(pos)  # (B, T, C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)  # (B, T, C)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        fused: bool = True,
        head_chunk: int = 256,
        head_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits for the last position, or the mean loss over all positions.

        Args:
            idx: token ids, (B, T).
            targets: next-token ids, (B, T), -1 to ignore; None to get logits instead.
            fused: use the chunked head (no full logits) for the loss.
            head_chunk: positions per chunk in the fused head.
            head_dtype: matmul dtype of the fused head (bf16 on CPUs with bf16 dot products);
                None follows autocast, or the weights' dtype outside it.

        Returns:
            (logits, loss): with targets, logits is None and loss a scalar; without,
            logits are (B, V) for the last position over the real vocab and loss is None.
        """
        x = self.hidden(idx)  # (B, T, C)
        V = self.config.vocab_size
        if targets is None:
            logits = _output_logits(x[:, -1, :], self.lm_weight)[:, :V]  # (B, V)
            return logits.float(), None
        h = x.reshape(-1, x.size(-1))  # (B*T, C)
        flat_targets = targets.reshape(-1)  # (B*T,)
        if fused:
            dtype = head_dtype or _autocast_dtype(h.device.type)
            loss = fused_cross_entropy(h, self.lm_weight, flat_targets, V, head_chunk, dtype)
        else:
            loss = plain_cross_entropy(h, self.lm_weight, flat_targets, V)
        return None, loss

    def position_losses(
        self, idx: torch.Tensor, targets: torch.Tensor, chunk: int = 256
    ) -> torch.Tensor:
        """Per-position loss (the surprise view), chunked so long windows stay small in memory.

        Args:
            idx: token ids, (B, T).
            targets: next-token ids, (B, T).
            chunk: positions whose full logits exist at once.

        Returns:
            (B, T) losses in nats.
        """
        B, T = idx.shape
        h = self.hidden(idx).reshape(B * T, -1)  # (B*T, C)
        flat_targets = targets.reshape(-1)  # (B*T,)
        weight = self.lm_weight[: self.config.vocab_size]  # (V, C)
        losses = [
            F.cross_entropy((h[lo:lo + chunk] @ weight.t()).float(),
                            flat_targets[lo:lo + chunk], reduction="none")  # (n,)
            for lo in range(0, B * T, chunk)
        ]
        return torch.cat(losses).view(B, T)  # (B, T)


def _output_logits(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, C) @ weight.T for the (Vp, C) output matrix: (B, Vp) logits.

    One row on the CPU is a matrix-vector product, which torch runs on one thread (8 ms at
    100,288 x 128 on a 2-core box); as a batch of 8 row blocks it runs on every thread
    (1.3 ms). The probe, the nudge and sampling all make one row.
    """
    (B, C), Vp = x.shape, weight.shape[0]
    if B == 1 and x.device.type == "cpu" and Vp % 8 == 0:
        blocks = weight.view(8, Vp // 8, C)  # (8, Vp/8, C)
        return torch.bmm(blocks, x.t().expand(8, C, 1)).view(1, Vp)  # (1, Vp)
    return x @ weight.t()  # (B, Vp)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast is using on this device, or None outside autocast."""
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None
