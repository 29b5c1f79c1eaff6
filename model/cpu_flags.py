"""What the CPU can do, read from /proc/cpuinfo without importing torch (benchmarks decide
which variants to run before they start one)."""

from __future__ import annotations


def cpu_has_bf16_dot(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this x86 CPU multiplies bf16 natively (AVX512-BF16 or AMX); False if unknown."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[-1].split()))
    except OSError:
        pass
    return False
