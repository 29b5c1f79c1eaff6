"""The real `nnio-tui` command in a pseudo-terminal, for the benchmarks that time what a user sees.

It starts `python -m nnio_tui` (what the `nnio-tui` script runs) with its stdin, stdout and
stderr on a pty of a given size, hands back the bytes it writes as they come, and quits it
with `q` (then kills it if it hangs). StampedPtyApp also says when each byte came: a small
reader process takes them off the pty as they are written, so a caller that is busy (parsing
a frame, say) does not delay the time stamps.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class PtyApp:
    def __init__(self, env: dict, args: list[str], rows: int = 30, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "nnio_tui", *args], cwd=ROOT, env=env,
                                     stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.closed = False

    def read(self, timeout: float) -> bytes:
        """What the app wrote within `timeout` seconds (b"" if nothing; closed once it exits)."""
        if self.closed or not select.select([self.master], [], [], timeout)[0]:
            return b""
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # the child closed the terminal
            data = b""
        self.closed = not data
        return data

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def quit(self, wait: float = 20.0) -> None:
        try:
            if self.proc.poll() is None:
                self.send(b"q")
                deadline = time.perf_counter() + wait
                while self.proc.poll() is None and time.perf_counter() < deadline:
                    if not self.read(0.05) and self.closed:
                        time.sleep(0.05)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            os.close(self.master)


READER = r"""
import os, struct, sys, time
fd, out = int(sys.argv[1]), sys.stdout.buffer
while True:
    try:
        data = os.read(fd, 1 << 16)
    except OSError:  # the app closed the terminal
        break
    if not data:
        break
    out.write(struct.pack("<dI", time.perf_counter(), len(data)) + data)
    out.flush()
"""
HEADER = struct.Struct("<dI")


class StampedPtyApp(PtyApp):
    """A PtyApp whose read() also sets `arrived`: when its last byte left the pty."""

    def __init__(self, env: dict, args: list[str], rows: int = 30, cols: int = 100) -> None:
        super().__init__(env, args, rows, cols)
        self.reader = subprocess.Popen([sys.executable, "-c", READER, str(self.master)],
                                       pass_fds=(self.master,), stdout=subprocess.PIPE)
        self.pending = b""
        self.arrived = 0.0

    def read(self, timeout: float) -> bytes:
        pipe = self.reader.stdout.fileno()
        if self.closed or not select.select([pipe], [], [], timeout)[0]:
            return b""
        more = os.read(pipe, 1 << 20)
        self.closed = not more
        self.pending += more
        data = []
        while len(self.pending) >= HEADER.size:
            stamp, size = HEADER.unpack_from(self.pending)
            if len(self.pending) < HEADER.size + size:
                break
            data.append(self.pending[HEADER.size:HEADER.size + size])
            self.pending = self.pending[HEADER.size + size:]
            self.arrived = stamp
        return b"".join(data)

    def quit(self, wait: float = 20.0) -> None:
        try:
            super().quit(wait)
        finally:
            self.reader.kill()
            self.reader.wait()
