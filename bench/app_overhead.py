"""App overhead benchmark: training speed with the app open vs headless, and key-to-screen latency.

Run: python bench/app_overhead.py [--seconds 10] [--presses 100] [--threads 1 2] [--rounds 3]
     [--yield-ms 0] [--post-every S]

For each torch thread count, one subprocess alternates headless training (Session.step in a
loop) with the real NnioApp on the same session under App.run_test (headless, 100x30): it
presses space and counts steps while the bars refresh, then closes the app. --rounds app
segments share --seconds, and headless segments come before, between and after them (the
same time in all), so a change in the machine's load hits both sides. In the last app
segment it then presses `right` --presses times while training runs, at random moments.
Headless training validates every TrainingBridge.EVAL_EVERY steps, as the app (and
`nnio-tui train`) does, so both sides do the same work.

Latency is timed from posting the key to the driver until a widget renders the new window:
- "window": ContextWindow draws the slid window (the UI's own work),
- "probe" (every 5th press): NextTokenBars draws the probe of the new window; the worker
  finishes its current step first, so this is bounded by one training step, not by the UI.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, random, statistics, sys, tempfile, time
threads, seconds, presses, yield_ms = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
post_every, rounds = float(sys.argv[5]), int(sys.argv[6])
from model.api import tune_allocator, tune_cpu, Session
tune_allocator()
tune_cpu(threads)
from textual import events
from nnio_tui.app import NnioApp
from nnio_tui.training import TrainingBridge
from nnio_tui.widgets.context_window import ContextWindow
from nnio_tui.widgets.next_token_bars import NextTokenBars
TrainingBridge.YIELD_S = yield_ms / 1000
if post_every >= 0:
    TrainingBridge.POST_EVERY_S = post_every

tmp = tempfile.mkdtemp()
session = Session.open(None, preset="cpu", device="cpu", checkpoint=f"{tmp}/run.safetensors")
tokens_per_step = session.info().batch_size * session.block_size

# Every step's own duration, tagged with where it ran: the medians compare the step itself
# with and without the app, whatever else the machine did in between.
step_times = {"headless": [], "app": [], "keys": []}
where = "headless"
plain_step = session.step

def timed_step():
    t = time.perf_counter()
    report = plain_step()
    step_times[where].append(time.perf_counter() - t)
    return report

session.step = timed_step

def headless(seconds):
    # steps of the same session in this thread, no app, with the app's validation schedule
    # (nnio-tui train's too): (steps, elapsed)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        report = session.step(); n += 1
        if report.step % TrainingBridge.EVAL_EVERY == 0:
            session.evaluate()
    return n, time.perf_counter() - t

session.step(); session.step()

window_seen, probe_seen = [], []
app = None

def stamp(cls, seen):
    original = cls.render
    def render(self):
        seen.append((time.perf_counter(), app.window_start, app.probe_stale))
        return original(self)
    cls.render = render

stamp(ContextWindow, window_seen)
stamp(NextTokenBars, probe_seen)

async def first(seen, since, start, fresh=False, timeout=10.0):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for t, s, stale in seen:
            if t >= since and s == start and not (fresh and stale):
                return t - since
        await asyncio.sleep(0.001)
    return timeout

async def step_boundary(at_least):
    # polls every millisecond: the step count is a plain int the worker bumps
    while session.step_count < at_least:
        await asyncio.sleep(0.001)
    return session.step_count

async def main(seconds, presses):
    global app
    app = NnioApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.corpus is None:
            await pilot.pause(0.05)
        first_step = session.step_count
        await pilot.press("space")
        # timed from one step's end to another's, so no part-step is counted
        s0 = await step_boundary(first_step + 1)
        t0, c0 = time.perf_counter(), time.thread_time()
        await asyncio.sleep(seconds)
        s1 = await step_boundary(session.step_count + 1)
        in_app = (s1 - s0, time.perf_counter() - t0)
        ui_cpu = (time.thread_time() - c0, time.perf_counter() - t0)
        global where
        where = "keys"  # steps while keys are pressed are kept apart from the timed ones
        window_ms, probe_ms = [], []
        rng = random.Random(0)
        for i in range(presses):
            # every 5th press also waits for the probe; the pause before it is up to a step
            # long so that presses land at random points of a step
            wait_probe = i % 5 == 4
            await asyncio.sleep(rng.uniform(0.0, 1.0 if wait_probe else 0.3))
            expected = app.window_start + 1
            since = time.perf_counter()
            app._driver.send_message(events.Key("right", None))
            window_ms.append(1000 * await first(window_seen, since, expected))
            if wait_probe:
                probe_ms.append(1000 * await first(probe_seen, since, expected, fresh=True))
        app.bridge.pause()
    return in_app, ui_cpu, window_ms, probe_ms

# Headless and app segments alternate, headless first and last, so drift in the machine's
# load hits both sides alike; key presses happen in the last app segment, after its timing.
bare, opened, cpu = [headless(seconds / rounds / 2)], [], []
for r in range(rounds):
    where = "app"
    in_app, ui, window_ms, probe_ms = asyncio.run(
        main(seconds / rounds, presses if r == rounds - 1 else 0))
    where = "headless"
    opened.append(in_app)
    cpu.append(ui)
    bare.append(headless(seconds / rounds / (2 if r == rounds - 1 else 1)))

def rate(parts):
    return sum(n for n, _ in parts) * tokens_per_step / sum(t for _, t in parts)

headless, in_app = rate(bare), rate(opened)
ui_cpu = sum(c for c, _ in cpu) / sum(t for _, t in cpu)

def pcts(xs):
    xs = sorted(xs)
    return {"p50": xs[len(xs) // 2], "p95": xs[min(len(xs) - 1, int(len(xs) * 0.95))], "max": xs[-1]}

step_ms = {k: 1000 * statistics.median(v) for k, v in step_times.items() if v}
print(json.dumps({"headless": headless, "in_app": in_app, "ui_cpu": ui_cpu, "step_ms": step_ms,
                  "window": pcts(window_ms),
                  "probe": pcts(probe_ms)}))
"""


def run(threads: int, seconds: float, presses: int, yield_ms: float, post_every: float,
        rounds: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(threads), str(seconds), str(presses), str(yield_ms),
           str(post_every), str(rounds)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="training time with the app open, split over --rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="app segments, each between two headless ones")
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--yield-ms", type=float, default=0.0,
                        help="TrainingBridge.YIELD_S, in ms, for the worker's pause between steps")
    parser.add_argument("--post-every", type=float, default=-1.0,
                        help="TrainingBridge.POST_EVERY_S, seconds between snapshots while"
                             " training (default: the app's own)")
    args = parser.parse_args()
    print(f"command: python bench/app_overhead.py --seconds {args.seconds:g} --presses "
          f"{args.presses} --threads {' '.join(map(str, args.threads))}"
          f" --yield-ms {args.yield_ms:g}"
          + (f" --post-every {args.post_every:g}" if args.post_every >= 0 else "")
          + f" --rounds {args.rounds}")
    results = {}
    for threads in args.threads:
        r = results[threads] = run(threads, args.seconds, args.presses, args.yield_ms,
                                   args.post_every, args.rounds)
        print(f"\n{threads} torch thread(s), cpu preset")
        print(f"  headless           {r['headless']:7.0f} tokens/s")
        print(f"  app open, training {r['in_app']:7.0f} tokens/s  = "
              f"{r['in_app'] / r['headless']:4.0%} of headless  (target >= 95%)")
        print(f"  UI thread CPU while training: {r['ui_cpu']:.0%} of a core")
        ms = r["step_ms"]
        print(f"  median step: headless {ms['headless']:.0f} ms, app open {ms['app']:.0f} ms"
              f" = {ms['headless'] / ms['app']:4.0%} speed; while keys were pressed "
              f"{ms.get('keys', math.nan):.0f} ms")
        for what, target in (("window", "  (target p95 <= 50 ms)"), ("probe", "")):
            p = r[what]
            print(f"  key -> {what:6s}  p50 {p['p50']:6.1f} ms  p95 {p['p95']:6.1f} ms  "
                  f"max {p['max']:6.1f} ms{target}")
    if len(results) > 1:
        best = max(r["headless"] for r in results.values())
        for threads, r in results.items():
            print(f"in-app tokens/s with {threads} thread(s) / best headless: "
                  f"{r['in_app'] / best:4.0%}")


if __name__ == "__main__":
    main()
