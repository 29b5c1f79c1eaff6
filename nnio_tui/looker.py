"""The looker: a thread that probes a window sent during training at once, beside the step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nnio_tui.training_commands import Look


class Looker:
    """Runs look(number, window) on a thread of its own for each window offered to it.

    Without it a new window's bars would wait for the training step, and maybe a
    validation, to end (bench/probe_latency.py). Only the newest window waiting counts:
    keys held down offer windows faster than they can be probed.
    """

    RATE = 10.0
    """Probes a second, kept up for as long as windows keep coming (a key held down sends
    some 30 a second). Back to back, 30 probes a second made the median step 20-24% slower
    on 2 cores; at 10 a second 8-10% (bench/probe_latency.py)."""
    BURST = 3
    """Probes that may start at once, on top of RATE: keys tapped in quick succession
    are each probed without waiting (a plain gap of 0.1 s between probes made a key that
    came soon after another wait: p95 90 ms instead of 20)."""

    def __init__(self, look: Callable[[int, Look], None]) -> None:
        """Args:
        look: probes one numbered window and posts it; it must not raise.
        """
        self._look = look
        self._waiting: tuple[int, Look] | None = None
        self._ready = threading.Condition()
        self._stop = False
        self._tokens = float(self.BURST)  # probes that may start now (a token bucket)
        self._refilled = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="nnio-looker")
        self.idle = threading.Event()
        """Set while no window waits and none is being probed."""
        self.idle.set()

    def start(self) -> None:
        self._thread.start()

    def offer(self, number: int, look: Look) -> None:
        """Probe this window next, instead of any other still waiting."""
        with self._ready:
            self._waiting = (number, look)
            self.idle.clear()
            self._ready.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after the probe in progress; a window still waiting is dropped."""
        with self._ready:
            self._stop = True
            self._waiting = None
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.idle.set()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._stop:
                    if self._waiting is None:
                        self.idle.set()
                        self._ready.wait()
                        continue
                    now = time.monotonic()
                    self._tokens = min(float(self.BURST),
                                       self._tokens + (now - self._refilled) * self.RATE)
                    self._refilled = now
                    if self._tokens >= 1:
                        break
                    # a newer window may take the waiting one's place meanwhile
                    self._ready.wait((1 - self._tokens) / self.RATE)
                if self._stop:
                    return
                self._tokens -= 1
                (number, look), self._waiting = self._waiting, None
            self._look(number, look)
