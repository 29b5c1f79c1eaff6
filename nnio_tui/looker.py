"""The looker: a thread that probes a window sent during training at once, beside the step."""

from __future__ import annotations

import threading
from collections.abc import Callable

from nnio_tui.training_commands import Look


class Looker:
    """Runs look(number, window) on a thread of its own for each window offered to it.

    Without it a new window's bars would wait for the training step, and maybe a
    validation, to end (bench/probe_latency.py). Only the newest window waiting counts:
    keys held down offer windows faster than they can be probed.
    """

    def __init__(self, look: Callable[[int, Look], None]) -> None:
        """Args:
        look: probes one numbered window and posts it; it must not raise.
        """
        self._look = look
        self._waiting: tuple[int, Look] | None = None
        self._ready = threading.Condition()
        self._stop = False
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
                while self._waiting is None and not self._stop:
                    self.idle.set()
                    self._ready.wait()
                if self._stop:
                    return
                (number, look), self._waiting = self._waiting, None
            self._look(number, look)
