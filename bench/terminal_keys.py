"""Key to screen in a real terminal: `→` pressed in a pty while training runs.

Run: python bench/terminal_keys.py [--presses 100] [--workers process thread] [--warmup 5]
     [--ui-seconds 30]   (needs pyte: pip install -e '.[bench]')

bench/app_overhead.py times the same key inside the app (a headless pilot) and stops when the
frame is composed. This one runs the real `nnio-tui` command in a 100x30 pseudo-terminal, so
it also counts what that leaves out: the key's bytes through the tty, Textual's input parser,
and writing the frame to the terminal. pyte (a terminal emulator) keeps the screen the app's
bytes describe. The script presses space, waits for the first tok/s figure and --warmup more
seconds, then presses `→` --presses times. After each press it waits until the token rows of
the context panel change, the moment a terminal has the new window to show, and then a random
0.05-0.35 s more, so a press lands anywhere in a training step. Only a slide changes those rows
(a step changes p(label) and the bars, not the window's tokens), so each change is its own
press's. The time is from writing the key to the master side of the pty to the moment the
last byte that completes the change left the pty. A small reader process takes the bytes off
the pty and stamps them, so pyte's parsing (about 7 ms per 4 KB read here) delays no stamp.
The script's own work runs on the same 2 cores as the app and training, as a terminal
emulator's would.

Before the presses it also watches --ui-seconds of training with no keys and prints what the
UI cost per step: the CPU time of the app's process (all its threads, from /proc; with
`--worker thread`, training shares it, so its main thread's only) and the bytes it wrote.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time

from pty_app import StampedPtyApp

try:
    import pyte
except ImportError:
    sys.exit("bench/terminal_keys.py needs pyte, a terminal emulator: pip install -e '.[bench]'")

ROWS, COLS = 30, 100
RIGHT = b"\x1b[C"
TOK_S = re.compile(r"[\d,]+ tok/s")
STEP = re.compile(r"step ([\d,]+)")


class Terminal:
    """The app in a pty, with the screen its output draws."""

    def __init__(self, env: dict, worker: str) -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.written = 0
        self.app = StampedPtyApp(env, ["--device", "cpu", "--worker", worker], ROWS, COLS)

    def pump(self, timeout: float) -> float | None:
        """Feed what arrives within `timeout` to the screen; when it last arrived, or None."""
        data = self.app.read(timeout)
        if not data:
            if self.app.closed:
                sys.exit(f"nnio-tui exited (code {self.app.proc.poll()}); screen:\n{self.text()}")
            return None
        self.stream.feed(data)
        self.written += len(data)
        return self.app.arrived

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, found, timeout: float, what: str) -> None:
        deadline = time.perf_counter() + timeout
        while not found(self.screen.display):
            if time.perf_counter() > deadline:
                sys.exit(f"no {what} within {timeout:.0f} s; screen:\n{self.text()}")
            self.pump(0.05)

    def step(self) -> int:
        """The step the header shows."""
        match = STEP.search(self.screen.display[0])
        return int(match.group(1).replace(",", "")) if match else 0

    def cpu_seconds(self, main_thread: bool = False) -> float:
        """CPU time of the app's process so far: all its threads, or its main thread only."""
        pid = self.app.proc.pid
        with open(f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def context_rows(self) -> tuple[str, ...]:
        """The context panel's token and id rows (above its label line), as on screen."""
        lines = self.screen.display
        top = next((i for i, line in enumerate(lines) if "─ context:" in line), None)
        if top is None:
            return ()
        right = lines[top].find("╮") + 1
        rows = []
        for line in lines[top + 1:]:
            cells = line[:right]
            if "label" in cells or "╰" in cells:
                break
            rows.append(cells)
        return tuple(rows)


def pump_for(term: Terminal, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while (left := end - time.perf_counter()) > 0:
        term.pump(min(left, 0.05))


def ui_cost(term: Terminal, seconds: float, main_thread: bool) -> str:
    """What the UI cost per step over `seconds` of training with no keys: the process's CPU,
    or with training in one of its threads, its main thread's (the UI's event loop)."""
    steps, cpu = term.step(), term.cpu_seconds(main_thread)
    written, t = term.written, time.perf_counter()
    pump_for(term, seconds)
    steps = term.step() - steps
    cpu = term.cpu_seconds(main_thread) - cpu
    written, t = term.written - written, time.perf_counter() - t
    if steps <= 0:
        return f"no step in {seconds:g} s"
    whose = "main thread" if main_thread else "process"
    return (f"{whose} {1000 * cpu / steps:.1f} ms of CPU and {written / steps / 1024:.1f} KiB"
            f" written per step ({steps} steps, {cpu / t:.1%} of a core)")


def run(env: dict, worker: str, presses: int, warmup: float, ui_seconds: float,
        rng: random.Random) -> tuple[list[float], list[int], str]:
    """Seconds from each press to its window on screen, the bytes written meanwhile, and
    the UI's cost per step before the presses."""
    term = Terminal(env, worker)
    try:
        term.wait_for(lambda lines: any("entropy " in line for line in lines), 60, "first probe")
        term.app.send(b" ")
        term.wait_for(lambda lines: any(TOK_S.search(line) for line in lines), 60, "tok/s figure")
        pump_for(term, warmup)
        cost = ui_cost(term, ui_seconds, main_thread=worker == "thread") if ui_seconds > 0 else ""
        times, sizes = [], []
        for _ in range(presses):
            before = term.context_rows()
            sent = time.perf_counter()
            term.app.send(RIGHT)
            arrived, written = None, term.written
            while term.context_rows() == before:
                if time.perf_counter() - sent > 10:
                    sys.exit(f"the window did not move within 10 s; screen:\n{term.text()}")
                arrived = term.pump(0.5) or arrived
            times.append(arrived - sent)
            sizes.append(term.written - written)
            pump_for(term, rng.uniform(0.05, 0.35))
        return times, sizes, cost
    finally:
        term.app.quit()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--workers", nargs="+", choices=("process", "thread"),
                        default=["process", "thread"], help="the app's --worker, in turn")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of training before the first press")
    parser.add_argument("--ui-seconds", type=float, default=30.0,
                        help="seconds of training with no keys to time the UI's cost per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"command: python bench/terminal_keys.py --presses {args.presses}"
          f" --workers {' '.join(args.workers)} --warmup {args.warmup:g}"
          f" --ui-seconds {args.ui_seconds:g} --seed {args.seed}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for worker in args.workers:
            # A data folder each, so that neither resumes the other's run.
            env = {**os.environ, "TERM": "xterm-256color", "NNIO_TUI_CACHE_DIR": f"{tmp}/cache",
                   "XDG_DATA_HOME": f"{tmp}/data-{worker}", "COLUMNS": str(COLS), "LINES": str(ROWS)}
            env.pop("TEXTUAL", None)
            times, sizes, cost = run(env, worker, args.presses, args.warmup, args.ui_seconds, rng)
            if cost:
                print(f"  {worker:7s} UI while training, no keys: {cost}")
            ms = [t * 1000 for t in times]
            print(f"  {worker:7s} key to screen ({len(ms)} presses of →, training): "
                  f"p50 {statistics.median(ms):6.1f} ms  p95 {percentile(ms, 0.95):6.1f} ms"
                  f" (target <= 50)  max {max(ms):6.1f} ms;"
                  f" {statistics.median(sizes) / 1024:.1f} KiB written per press (median)")


if __name__ == "__main__":
    main()
