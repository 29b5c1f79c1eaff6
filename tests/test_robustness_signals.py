"""The real app in a pseudo-terminal: q, Ctrl+C, SIGTERM and a dropped link (SIGHUP) while it
trains all end cleanly and save; a SIGKILL during a save never costs the previous checkpoint."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from model import checkpoint as ckpt

ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    """`nnio-tui ARGS` on a 100x30 pseudo-terminal, its output collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the app
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, "-m", "nnio_tui", *args])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            self.output += data

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"no {text!r} in {bytes(self.output[-2000:])!r}"
            time.sleep(0.05)

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def hang_up(self) -> None:
        """Close the terminal's master side, as sshd does when the link drops."""
        os.close(self.fd)
        self.fd = -1

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(5)
                if self.fd >= 0:
                    os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                pytest.fail(f"the app did not exit: {bytes(self.output[-2000:])!r}")
            time.sleep(0.05)


def training_processes() -> list[int]:
    """Live training processes (model.remote children) started under this test's settings."""
    mine = f"XDG_STATE_HOME={os.environ['XDG_STATE_HOME']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if b"model.remote" in cmdline and mine in environ and state != "Z":
            found.append(int(entry.name))
    return found


def _train_then(tmp_path: Path, stop, *flags: str) -> tuple[int, Terminal, Path]:
    path = tmp_path / "run.safetensors"
    term = Terminal("--preset", "tiny", "--device", "cpu", "--checkpoint", str(path), *flags)
    term.wait_for(b"params")
    term.send(b" ")  # space: run
    term.wait_for(b"unsaved")  # the loss panel's subtitle once a step has changed the weights
    time.sleep(0.5)
    stop(term)
    return term.exit_code(), term, path


@pytest.mark.parametrize("stop, flags", [
    pytest.param(lambda t: t.send(b"q"), (), id="q"),
    pytest.param(lambda t: t.send(b"q"), ("--worker", "thread"), id="q-thread"),
    pytest.param(lambda t: t.send(b"\x03"), (), id="ctrl+c"),
    pytest.param(lambda t: os.kill(t.pid, signal.SIGTERM), (), id="SIGTERM"),
])
def test_stopping_mid_training_saves_and_says_where(tmp_path, stop, flags):
    code, term, path = _train_then(tmp_path, stop, *flags)
    assert code == 0, bytes(term.output[-2000:])
    assert f"nnio-tui: saved checkpoint to {path}".encode() in term.output
    assert b"Traceback" not in term.output
    _, meta = ckpt.read(path)
    assert int(meta["step"]) > 0
    assert training_processes() == []  # the training process ended with the app


def test_a_killed_app_leaves_its_training_saved(tmp_path):
    path = tmp_path / "run.safetensors"
    term = Terminal("--preset", "tiny", "--device", "cpu", "--checkpoint", str(path))
    term.wait_for(b"params")
    term.send(b" ")
    term.wait_for(b"unsaved")
    assert training_processes()
    os.kill(term.pid, signal.SIGKILL)  # no handler runs: only the training process can save
    assert term.exit_code() == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while training_processes():
        assert time.monotonic() < deadline, "the training process outlived the app"
        time.sleep(0.1)
    _, meta = ckpt.read(path)
    assert int(meta["step"]) > 0


def test_a_dropped_link_saves(tmp_path):
    def drop(term):
        term.hang_up()
        os.kill(term.pid, signal.SIGHUP)  # what the kernel sends the session on hang-up

    code, _, path = _train_then(tmp_path, drop)
    assert code == 0
    _, meta = ckpt.read(path)
    assert int(meta["step"]) > 0


@pytest.mark.parametrize("worker, kept", [
    ("process", b"the training process still saves the run to {path} when its step ends"),
    ("thread", b"training since the last save is lost"),
])
def test_q_three_times_quits_at_once_and_says_what_is_kept(tmp_path, worker, kept):
    path = tmp_path / "run.safetensors"
    # batch 256 at the cpu preset: a step of seconds, so all three keys land in one
    term = Terminal("--preset", "cpu", "--batch-size", "256", "--device", "cpu",
                    "--checkpoint", str(path), "--worker", worker)
    term.wait_for(b"params")
    term.send(b" ")
    term.wait_for(b"unsaved", timeout=120)  # the first step is done
    time.sleep(0.3)  # past the probe between two steps: the second one is under way
    term.send(b"qqq")
    assert term.exit_code() == 130, bytes(term.output[-2000:])
    kept = kept.replace(b"{path}", str(path).encode())
    assert b"nnio-tui: quit without waiting for the step: " + kept in term.output
    assert term.output.rfind(b"\x1b[?1049l") > term.output.rfind(b"\x1b[?1049h")  # screen back
    if worker == "process":  # the orphaned training process ends its step and saves
        deadline = time.monotonic() + 120
        while training_processes():
            assert time.monotonic() < deadline, "the training process outlived the app"
            time.sleep(0.1)
        _, meta = ckpt.read(path)
        assert int(meta["step"]) >= 2
    else:
        assert not path.exists()
