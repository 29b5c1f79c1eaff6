"""Choosing the device, and tuning the CPU (threads, glibc's allocator) for training."""

from __future__ import annotations

import os

import torch

from model.allocator import tune_allocator
from model.cpu_flags import cpu_has_bf16_dot
from model.errors import DeviceError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a usable torch.device.

    Args:
        name: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps".

    Returns:
        The device.
    """
    name = name.strip().lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA is not available on this machine; use --device cpu")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"{name!r} is not a device name; use cuda or cuda:0") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{name} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if name == "mps":
        if not has_mps:
            raise DeviceError("MPS (Apple GPU) is not available on this machine; use --device cpu")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or mps")


PRECISIONS = ("auto", "fp32", "bf16")


def training_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype of training's big matrix products: torch.bfloat16, or None for float32.

    "auto" picks bf16 on CUDA GPUs from Ampere on (autocast) and on CPUs with bf16
    dot-product instructions, where the output layer's matmuls ran 2.2-3.4x faster than
    float32 (bench/README.md); elsewhere (a T4 or V100, most CPUs) bf16 is emulated and
    slower, so float32. Softmax, loss, optimizer state and the probe's distribution stay
    float32 either way.

    Args:
        device: where training runs.
        precision: "auto", "fp32" or "bf16".
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if device.type == "mps" and precision == "bf16":
        raise DeviceError("bf16 training needs CUDA or a CPU; use --precision fp32 on mps")
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_bf16_tensor_cores(device) else None
    return torch.bfloat16 if cpu_has_bf16_dot() else None


def cuda_has_bf16_tensor_cores(device: torch.device) -> bool:
    """Whether this GPU multiplies bf16 in hardware: compute capability 8.0 (Ampere) or later."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def tune_cpu(threads: int | None = None) -> None:
    """Make CPU training faster; call once at start-up, before the first big tensor.

    Args:
        threads: torch intra-op threads; None keeps torch's default (one per core).
    """
    if threads is not None:
        if threads < 1:
            raise DeviceError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    tune_allocator()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# What torch's CPU allocator says when malloc fails (POSIX, Windows); a plain RuntimeError.
_CPU_ALLOC_FAILED = ("can't allocate memory", "not enough memory")


def is_out_of_memory(error: BaseException) -> bool:
    """True for a failed allocation: torch's OutOfMemoryError (CUDA, MPS), the CPU
    allocator's RuntimeError, or Python's and numpy's MemoryError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return (isinstance(error, RuntimeError) and "DefaultCPUAllocator" in text
            and any(words in text for words in _CPU_ALLOC_FAILED))


def memory_size(device: torch.device) -> int | None:
    """Bytes of memory a CPU device may use: the machine's RAM, or a container's or batch
    job's cgroup limit where lower; None for other devices (CUDA and MPS report a failed
    allocation themselves) or where the system does not say."""
    if device.type != "cpu":
        return None
    try:
        sizes = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        return None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit) as f:
                sizes.append(int(f.read().strip()))  # "max" (no limit) is no number
        except (OSError, ValueError):
            pass
    return min(sizes)


def check_batch_fits(gpt, batch_size: int, device: torch.device) -> None:
    """Refuse a batch whose activations alone outgrow the machine's memory: on a CPU the
    system would kill the process (memory is promised first and taken later) before torch
    could say it ran out.

    Args:
        gpt: the model's GPTConfig.
        batch_size: windows per training step.
        device: where training runs; only a CPU is checked.
    """
    need = training_memory_floor(gpt.n_layer, gpt.n_embd, gpt.block_size, batch_size)
    have = memory_size(device)
    if have is not None and need > have:
        raise DeviceError(
            f"a batch of {batch_size:,} windows of {gpt.block_size:,} tokens needs over"
            f" {need / 2**30:,.1f} GiB to train, more than the {have / 2**30:,.1f} GiB of"
            f" {device}: use a smaller --batch-size")


def training_memory_floor(n_layer: int, n_embd: int, block_size: int, batch_size: int) -> int:
    """Bytes a training step needs at the least: the activations backward keeps, about 16
    float32 vectors of n_embd per token and block. The real need is higher; a batch past
    this floor cannot fit, and would be killed by the system instead of failing cleanly."""
    return 4 * 16 * n_layer * n_embd * block_size * batch_size
