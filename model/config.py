"""Model and training settings: frozen dataclasses, named presets, and one-line validation."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields

from model.errors import ConfigError

MAX_BLOCK_SIZE = 8192


@dataclass(frozen=True)
class GPTConfig:
    """The network's shape; vocab_size is the tokenizer's real size (padding happens in gpt.py)."""

    vocab_size: int = 100_277
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batch shape, AdamW, the LR schedule and the nudge."""

    batch_size: int = 16
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 20
    lr_decay_steps: int = 5000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    nudge_nats: float = 0.3
    head_chunk: int = 512  # positions per fused-head chunk (bench/README.md, note 1)


# Shapes measured on a 2-core CPU with cl100k (see README): the output layer dominates, so
# the cpu preset keeps n_embd small and spends the saved time on layers, which are cheap.
PRESETS: dict[str, tuple[GPTConfig, TrainConfig]] = {
    "tiny": (
        GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=32),
        TrainConfig(batch_size=4, learning_rate=1e-2, min_lr=1e-3, warmup_steps=5),
    ),
    # At 3e-3 the default run (seed 0) jumped from 7.2 to 10.9 nats at step 24 and back the
    # next step, a lone spike on the curve; at 2e-3 its largest jump was 1.1 nats, and the
    # validation loss after 200 steps was 6.17 / 6.19 (seeds 0 / 1) against 6.13 / 6.34.
    "cpu": (
        GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=128),
        TrainConfig(batch_size=16, learning_rate=2e-3, min_lr=2e-4, warmup_steps=20),
    ),
    "gpu": (
        GPTConfig(block_size=256, n_layer=6, n_head=6, n_embd=384),
        TrainConfig(batch_size=32, learning_rate=1e-3, min_lr=1e-4, warmup_steps=100,
                    lr_decay_steps=20_000, head_chunk=2048),
    ),
    "gpt2": (
        GPTConfig(block_size=1024, n_layer=12, n_head=12, n_embd=768),
        TrainConfig(batch_size=16, learning_rate=6e-4, min_lr=6e-5, warmup_steps=700,
                    lr_decay_steps=100_000, head_chunk=4096),
    ),
}


def step_flops(gpt: GPTConfig, train: TrainConfig) -> float:
    """Matmul FLOPs of one training step, forward and backward (PaLM's count, as bench/ uses)."""
    L, C, T, V = gpt.n_layer, gpt.n_embd, gpt.block_size, gpt.vocab_size
    per_token = 6 * L * 12 * C * C + 12 * L * C * T + 6 * V * C
    return per_token * T * train.batch_size


# A step this many times the cpu preset's (under a second on 2 cores) takes 10 s or more.
CPU_STEP_WARN_X = 12


def cpu_slowness(gpt: GPTConfig, train: TrainConfig, preset: str) -> str | None:
    """A line when a step of this model and batch is too much work to train live on a CPU,
    naming what makes it so (a big batch, or a model sized for a GPU); else None."""
    flops = step_flops(gpt, train)
    cpu = step_flops(*build_config("cpu", gpt.vocab_size))
    if flops <= CPU_STEP_WARN_X * cpu:
        return None
    preset_batch = build_config(preset, gpt.vocab_size)[1].batch_size if preset in PRESETS else None
    if preset_batch is not None and train.batch_size > preset_batch:
        what = f"a batch of {train.batch_size:,} windows"  # the model itself may be tiny
    elif preset in PRESETS and preset != "cpu":
        what = "this model (sized for a GPU)"
    else:
        what = "this model"
    return (f"{what} is big for a CPU: a step is {flops / 1e12:,.1f} TFLOP of work,"
            f" {flops / cpu:,.0f}x the cpu preset's, so each takes seconds to minutes here"
            " (--preset cpu trains live)")


def build_config(
    preset: str, vocab_size: int, overrides: dict | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Start from a preset, apply field overrides, and validate the result.

    Args:
        preset: one of PRESETS.
        vocab_size: the tokenizer's n_vocab.
        overrides: GPTConfig or TrainConfig field names mapped to new values.

    Returns:
        The validated (GPTConfig, TrainConfig) pair.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    gpt, train = PRESETS[preset]
    gpt = dataclasses.replace(gpt, vocab_size=vocab_size)
    gpt_names = {f.name for f in fields(GPTConfig)} - {"vocab_size"}
    train_names = {f.name for f in fields(TrainConfig)}
    gpt_changes, train_changes = {}, {}
    for name, value in (overrides or {}).items():
        if name in gpt_names:
            gpt_changes[name] = _coerce(GPTConfig, name, value)
        elif name in train_names:
            train_changes[name] = _coerce(TrainConfig, name, value)
        else:
            known = ", ".join(sorted(gpt_names | train_names))
            raise ConfigError(f"unknown setting {name!r}; known settings: {known}")
    if "learning_rate" in train_changes and "min_lr" not in train_changes:
        # a new peak keeps the preset's schedule shape: the decay ends at the same fraction of it
        peak = train_changes["learning_rate"]
        train_changes["min_lr"] = peak * train.min_lr / train.learning_rate
    gpt = dataclasses.replace(gpt, **gpt_changes)
    train = dataclasses.replace(train, **train_changes)
    validate(gpt, train)
    return gpt, train


def _coerce(cls: type, name: str, value: object) -> object:
    """Convert a CLI-ish value to the field's type, refusing lossy conversions."""
    kind = type(getattr(cls(), name))
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {value!r}") from None


def validate(gpt: GPTConfig, train: TrainConfig) -> None:
    """Raise ConfigError with one line for the first out-of-range setting."""
    if gpt.vocab_size < 2:
        raise ConfigError(f"vocab_size must be at least 2, got {gpt.vocab_size}")
    if not 1 <= gpt.block_size <= MAX_BLOCK_SIZE:
        raise ConfigError(
            f"block_size must be between 1 and {MAX_BLOCK_SIZE}, got {gpt.block_size}")
    for name in ("n_layer", "n_head", "n_embd"):
        if getattr(gpt, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(gpt, name)}")
    if gpt.n_embd % gpt.n_head:
        raise ConfigError(
            f"n_embd ({gpt.n_embd}) must be divisible by n_head ({gpt.n_head})")
    if not 0.0 <= gpt.dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {gpt.dropout}")
    if train.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {train.batch_size}")
    for name in ("learning_rate", "min_lr", "nudge_nats", "weight_decay", "grad_clip"):
        value = getattr(train, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    if train.min_lr > train.learning_rate:
        raise ConfigError(
            f"min_lr ({train.min_lr}) must not exceed learning_rate ({train.learning_rate})")
    for name in ("beta1", "beta2"):
        if not 0.0 <= getattr(train, name) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(train, name)}")
    if train.warmup_steps < 0 or train.lr_decay_steps < 1:
        raise ConfigError("warmup_steps must be >= 0 and lr_decay_steps >= 1")
    if train.head_chunk < 1:
        raise ConfigError(f"head_chunk must be at least 1, got {train.head_chunk}")


def to_json(config: GPTConfig | TrainConfig) -> str:
    """Serialize a config for checkpoint metadata."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def from_json(cls: type, text: str) -> GPTConfig | TrainConfig:
    """Rebuild a config saved by to_json; unknown keys and wrong types are refused.

    Raises:
        ConfigError: a field is unknown (a newer version) or has the wrong type (damage).
        ValueError: the text is not JSON.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} is not a JSON object")
    defaults = {f.name: f.default for f in fields(cls)}
    unknown = set(data) - set(defaults)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    for name, value in data.items():
        if not _same_kind(value, defaults[name]):
            kind = type(defaults[name]).__name__
            raise ConfigError(f"{cls.__name__}.{name} should be {kind}, got {value!r}")
    return cls(**data)


def _same_kind(value, default) -> bool:
    """A JSON value fits a field: bool for bool, int for int, any number for float."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))
