"""Training: the AdamW step, its LR schedule, validation loss, and the one-window nudge."""

from __future__ import annotations

import contextlib
import math
import threading
import time

import torch
from torch.nn import functional as F

from model.config import GPTConfig, TrainConfig
from model.data import Windows
from model.device import synchronize, training_dtype
from model.errors import TrainingDiverged
from model.gpt import GPT


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for a step: linear warmup, then cosine decay to min_lr, then flat.

    Args:
        step: the 0-based index of the update about to run.
        cfg: the schedule's settings.

    Returns:
        The learning rate.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_steps + 1)
    if step >= cfg.lr_decay_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.lr_decay_steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (and the embedding) only, not on norms or biases.

    Args:
        model: the network.
        cfg: betas, weight decay and learning rate.
        device: fused AdamW is used on CUDA, and on the CPU where torch has it.

    Returns:
        The optimizer; param_groups[0] decays, param_groups[1] does not.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    extra = {"fused": True} if _has_fused_adamw(device) else {}
    return torch.optim.AdamW(
        groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), **extra)


def _has_fused_adamw(device: torch.device) -> bool:
    """Fused AdamW runs on CUDA and on the CPU (torch >= 2.4), not on MPS.

    On the CPU it took 5-10 ms a step instead of the default's 20-50 ms at the cpu preset.
    """
    return device.type in ("cuda", "cpu")


class Trainer:
    """Owns the model, its optimizer and the batch sampler, and counts steps."""

    def __init__(self, gpt_cfg: GPTConfig, train_cfg: TrainConfig, windows: Windows,
                 device: torch.device, seed: int = 0, precision: str = "auto"):
        """Args:
        gpt_cfg: the network's shape.
        train_cfg: the optimizer and schedule.
        windows: where batches come from.
        device: where the model lives.
        seed: seeds the weight initialization.
        precision: "auto", "fp32" or "bf16" for the big matmuls (model.device.training_dtype).
        """
        self.gpt_cfg = gpt_cfg
        self.train_cfg = train_cfg
        self.windows = windows
        self.device = device
        self.low_dtype = training_dtype(device, precision)  # None: float32 throughout
        self.step = 0
        torch.manual_seed(seed)
        self.model = GPT(gpt_cfg).to(device)
        self._optimizer: torch.optim.AdamW | None = None
        self._optimizer_state: dict[torch.nn.Parameter, dict] = {}  # applied when it is made
        self._good: list[torch.Tensor] | None = None
        self.weights_lock = threading.Lock()
        """Held while the weights change, so that a probe from another thread (one that
        runs beside a step) sees the weights of one step, never a mix of two."""

    @property
    def optimizer(self) -> torch.optim.AdamW:
        """AdamW, made at its first use.

        Making it imports torch._dynamo (about 1.5 s here, as torch.optim disables dynamo
        on its methods), which the first probe need not wait for (bench/startup.py).
        """
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.train_cfg, self.device)
            self._optimizer.state.update(self._optimizer_state)
            self._optimizer_state = {}
        return self._optimizer

    @property
    def fused_adamw(self) -> bool:
        """Whether the optimizer is torch's fused AdamW, which keeps `step` on the device."""
        return _has_fused_adamw(self.device)

    def optimizer_state(self) -> dict[torch.nn.Parameter, dict]:
        """AdamW's state per parameter, without making AdamW if it is not made yet."""
        return self._optimizer.state if self._optimizer is not None else self._optimizer_state

    def set_optimizer_state(self, state: dict[torch.nn.Parameter, dict]) -> None:
        """AdamW state per parameter (from a checkpoint), for now or for when AdamW is made."""
        if self._optimizer is None:
            self._optimizer_state = dict(state)
        else:
            self._optimizer.state.update(state)

    def autocast(self):
        """bf16 autocast on CUDA; on the CPU only the output layer goes bf16 (head_dtype).

        CPU autocast would also narrow the blocks' small matmuls: that was 4-6% slower at
        the cpu preset, where the head is nearly all of the work (bench/README.md, note 1).
        """
        if self.device.type == "cuda" and self.low_dtype is not None:
            return torch.autocast(device_type="cuda", dtype=self.low_dtype)
        return contextlib.nullcontext()

    @property
    def head_dtype(self) -> torch.dtype | None:
        """The fused head's matmul dtype outside autocast: bf16 on a CPU with bf16 dots."""
        return self.low_dtype if self.device.type == "cpu" else None

    def train_step(self) -> tuple[float, float, float]:
        """One AdamW update on a batch of random training windows.

        Returns:
            (loss before the update, learning rate used, tokens per wall second).
        """
        t0 = time.perf_counter()
        cfg = self.train_cfg
        idx, targets = self.windows.batch(cfg.batch_size)
        idx, targets = idx.to(self.device), targets.to(self.device)  # (B, T)
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with self.autocast():
            _, loss = self.model(idx, targets, fused=True, head_chunk=cfg.head_chunk,
                                 head_dtype=self.head_dtype)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        loss_value, norm_value = loss.item(), norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            self.optimizer.zero_grad(set_to_none=True)
            message = (f"the loss became {loss_value} at step {self.step}; kept the last good"
                       f" weights - {self._lower_lr_advice()}")
            with self.weights_lock:
                if self._restore_good():
                    self.step -= 1  # the good weights are those from before the last update
            raise TrainingDiverged(message)
        self._keep_good()
        with self.weights_lock:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self._check_weights()
            synchronize(self.device)
        tokens_per_s = idx.numel() / max(time.perf_counter() - t0, 1e-9)
        return loss_value, lr, tokens_per_s

    def _keep_good(self) -> None:
        # these weights just gave a finite loss: the point to return to if the next one is not
        params = list(self.model.parameters())
        if self._good is None:
            self._good = [p.detach().clone() for p in params]
        else:
            torch._foreach_copy_(self._good, [p.detach() for p in params])

    def _restore_good(self) -> bool:
        """Put back the weights of the last finite loss; False if there are none yet."""
        if self._good is None:
            return False  # the very first step diverged: there are no earlier weights
        with torch.no_grad():
            for p, good in zip(self.model.parameters(), self._good):
                p.copy_(good)
        return True

    def _check_weights(self) -> None:
        """Undo an update that left NaN or infinite weights, and say so.

        The loss check above sees the weights before the update; a huge learning rate can
        still blow them up in the update itself, and the next probe would show NaN. The saved
        good weights are those from before this update.
        """
        params = [p.detach() for p in self.model.parameters()]
        if bool(torch.isfinite(torch.stack(torch._foreach_norm(params)).sum())):
            return
        self._restore_good()
        self.step -= 1
        raise TrainingDiverged(
            f"the update at step {self.step} made the weights infinite; kept the last good"
            f" weights - {self._lower_lr_advice()}")

    def _lower_lr_advice(self) -> str:
        # A run keeps the learning rate it was saved with, so a lower one is a new run.
        return f"a new run with a lower --lr (now {self.train_cfg.learning_rate:g}) avoids this"

    @torch.no_grad()
    def evaluate(self, batches: int = 4) -> float:
        """Mean loss over fixed validation windows.

        Args:
            batches: how many batches of batch_size windows.

        Returns:
            The mean loss in nats.
        """
        self.model.eval()
        losses = []
        for idx, targets in self.windows.val_batches(batches, self.train_cfg.batch_size):
            with self.autocast():
                _, loss = self.model(idx.to(self.device), targets.to(self.device),
                                     head_chunk=self.train_cfg.head_chunk,
                                     head_dtype=self.head_dtype)
            losses.append(loss.float())
        return torch.stack(losses).mean().item()

    def label_logprob(self, idx: torch.Tensor, label: int) -> torch.Tensor:
        """log p(label | idx) at the last position of one window, idx (1, T), with grad."""
        logits, _ = self.model(idx)  # (1, V)
        return F.log_softmax(logits, dim=-1)[0, label]

    def nudge(self, context_ids: list[int], label: int) -> tuple[float, float, float]:
        """One plain gradient step on one window's last position, leaving AdamW's state alone.

        The step size targets a rise of nudge_nats in log p(label): to first order the rise
        is lr * |grad|^2, so lr = nudge_nats / |grad|^2 gives about the same visible change
        (3% -> 4% at 0.3 nats) however trained the model is. AdamW would instead move every
        weight by about lr whatever its gradient and mix in the batches' momentum. If the
        step overshoots, it is undone and retried smaller, so p(label) always rises.

        Args:
            context_ids: the window, at most block_size ids.
            label: the token that follows it.

        Returns:
            (p before, p after, loss before in nats).
        """
        idx = torch.tensor([context_ids], dtype=torch.long, device=self.device)  # (1, T)
        self.model.eval()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model.zero_grad(set_to_none=True)
        logp = self.label_logprob(idx, label)
        (-logp).backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        before = logp.item()
        sq_norm = sum(g.float().pow(2).sum() for g in grads).item()
        self.model.zero_grad(set_to_none=True)
        if not (math.isfinite(before) and math.isfinite(sq_norm)):
            raise TrainingDiverged("the model outputs NaN for this window; reset the model (r)")
        after = before
        lr = self.train_cfg.nudge_nats / max(sq_norm, 1e-12)
        with torch.no_grad(), self.weights_lock:
            for _ in range(8):
                torch._foreach_add_(params, grads, alpha=-lr)
                after = self.label_logprob(idx, label).item()
                if after > before:
                    break
                torch._foreach_add_(params, grads, alpha=lr)  # undo: the step overshot
                lr /= 4
            else:
                after = before  # every step overshot (a flat spot); the weights are unchanged
        return math.exp(before), math.exp(after), -before
