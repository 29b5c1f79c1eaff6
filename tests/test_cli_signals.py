"""Headless `nnio-tui train` stopped by Ctrl+C, SIGTERM or SIGHUP saves, says why, and exits
128 + the signal's number; a signal ignored by `nohup` stays ignored."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from model.api import Session

ROOT = Path(__file__).resolve().parent.parent


class Training:
    """`nnio-tui train` on the tiny preset in a child process, its stderr collected by a thread."""

    def __init__(self, checkpoint: Path, prefix: tuple[str, ...] = ()) -> None:
        argv = ["train", "--preset", "tiny", "--device", "cpu", "--steps", "100000",
                "--eval-every", "1", "--checkpoint", str(checkpoint)]
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "nnio_tui", *argv],
                                     cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err += line

    def wait_for_a_step(self, timeout: float = 60) -> None:
        # --eval-every 1 prints a line per step, even to a pipe
        deadline = time.monotonic() + timeout
        while not re.search(r"step +\d+  train ", self.err):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                pytest.fail(f"no training step: {self.err}")
            time.sleep(0.05)

    def exit_code(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"train did not stop: {self.err[-2000:]}")
        self._reader.join(5)
        return code


@pytest.mark.parametrize("signum, why", [
    (signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP"), (signal.SIGINT, "Ctrl+C"),
])
def test_a_stop_signal_saves_the_training_done(tmp_path, signum, why):
    checkpoint = tmp_path / "run.safetensors"
    run = Training(checkpoint)
    run.wait_for_a_step()
    run.proc.send_signal(signum)
    assert run.exit_code() == 128 + signum, run.err
    assert f"saved checkpoint to {checkpoint}" in run.err
    assert f"stopped by {why}" in run.err and "Traceback" not in run.err
    assert Session.load(checkpoint, device="cpu").step_count >= 1


def test_a_hang_up_ignored_by_nohup_does_not_stop_training(tmp_path):
    nohup = shutil.which("nohup")
    if nohup is None:
        pytest.skip("no nohup on this machine")
    run = Training(tmp_path / "run.safetensors", prefix=(nohup,))
    run.wait_for_a_step()
    run.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGTERM)
    assert run.exit_code() == 128 + signal.SIGTERM, run.err
    assert "stopped by SIGTERM" in run.err


def test_a_terminal_that_hangs_up_saves_and_exits_quietly(tmp_path):
    from test_robustness_signals import Terminal

    checkpoint = tmp_path / "run.safetensors"
    term = Terminal("train", "--preset", "tiny", "--device", "cpu", "--steps", "100000",
                    "--eval-every", "1", "--checkpoint", str(checkpoint))
    term.wait_for(b"train ")
    term.hang_up()
    assert term.exit_code() == 128 + signal.SIGHUP
    assert Session.load(checkpoint, device="cpu").step_count >= 1
