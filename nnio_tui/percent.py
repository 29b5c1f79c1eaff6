"""Probabilities as short percentages that stay readable when tiny (no textual needed)."""

from __future__ import annotations

import math


def percent_number(p: float) -> str:
    """A probability in percent with two significant digits below 0.1% (0.0023, not 0.002)."""
    value = p * 100
    if value >= 0.1:
        return f"{value:.1f}"
    if value <= 0:
        return "0"
    return f"{value:.{1 - math.floor(math.log10(value))}f}"


def pct(p: float) -> str:
    """A probability as a short percentage: 7.2%, 0.0023%."""
    return percent_number(p) + "%"


def pct_change(before: float, after: float) -> str:
    """The lecture's "3% -> 4%", compact enough for a bar row: 3.0→4.0%."""
    return f"{percent_number(before)}→{percent_number(after)}%"
