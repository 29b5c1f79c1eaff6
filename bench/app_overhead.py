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
`nnio-tui train`) does, so both sides do the same work. The validations' time is left out of
both sides' tokens/s: one takes about a step, and whether the two or three of a run fell in
app or headless segments moved the ratio by up to ±4% (bench/README.md, note 6).

Latency is timed from posting the key to the driver until the frame that draws the new
window is done (the compositor's refresh has returned; a real terminal then still has to
take the bytes):
- "window": the frame in which ContextWindow draws the slid window (the UI's own work);
  "window, render starts" stops the clock as ContextWindow starts drawing (builds its
  rows), as this script did until note 5 of bench/README.md,
- "probe" (every 5th press): the frame in which NextTokenBars draws the probe of the new
  window, which the bridge's looker probes beside the running step
  (bench/probe_latency.py times that part alone, and compares it with waiting for the step).
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
import asyncio, bisect, functools, json, random, statistics, sys, tempfile, time
threads, seconds, presses, yield_ms = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
post_every, rounds, workers = float(sys.argv[5]), int(sys.argv[6]), sys.argv[7].split(",")
preset = sys.argv[8]
from textual import events
from textual.screen import Screen
from nnio_tui.app import NnioApp
from nnio_tui.training import TrainingBridge
from nnio_tui.widgets.context_window import ContextWindow
from nnio_tui.widgets.next_token_bars import NextTokenBars
TrainingBridge.YIELD_S = yield_ms / 1000
if post_every >= 0:
    TrainingBridge.POST_EVERY_S = post_every

tmp = tempfile.mkdtemp()
def options(worker):
    return dict(corpus=None, preset=preset, device="cpu", checkpoint=f"{tmp}/{worker}.safetensors")

sessions = {}
if "process" in workers:
    from model.remote import RemoteSession, open_new
    sessions["process"] = RemoteSession(functools.partial(open_new, options("process")),
                                        threads=threads)
if "thread" in workers:
    from model.api import tune_allocator, tune_cpu, Session
    tune_allocator()
    tune_cpu(threads)
    sessions["thread"] = Session.open(**options("thread"))
first = sessions[workers[0]]
tokens_per_step = first.info().batch_size * first.block_size

# Every step's own duration, tagged with where it ran: the medians compare the step itself
# with and without the app, whatever else the machine did in between.
step_times = {(w, where): [] for w in workers for where in ("headless", "app", "keys")}
where = "headless"
steps_done = 0  # counted here: asking a session in a child process would wait for its step

def timed(worker, plain_step):
    def step():
        global steps_done
        t = time.perf_counter()
        report = plain_step()
        step_times[worker, where].append(time.perf_counter() - t)
        steps_done += 1
        return report
    return step

evaluations = []  # (worker, start, seconds) of each validation, app and headless alike

def timed_evaluate(worker, plain_evaluate):
    def evaluate(*args, **kwargs):
        t = time.perf_counter()
        try:
            return plain_evaluate(*args, **kwargs)
        finally:
            evaluations.append((worker, t, time.perf_counter() - t))
    return evaluate

def evaluating(start, end):
    # seconds of validation that began within [start, end)
    return sum(d for _, t, d in evaluations if start <= t < end)

closers = {}
for worker, session in sessions.items():
    # An app that ends without a quit closes its session (and saves it); here each app
    # segment hands the same session back to the next headless one.
    closers[worker] = getattr(session, "close", None)
    session.close = lambda: None
    session.step = timed(worker, session.step)
    session.evaluate = timed_evaluate(worker, session.evaluate)
    session.step(); session.step()

def headless(session, seconds):
    # steps of the session from this thread, no app, with the app's validation schedule
    # (nnio-tui train's too): (steps, elapsed)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        report = session.step(); n += 1
        if report.step % TrainingBridge.EVAL_EVERY == 0:
            session.evaluate()
    end = time.perf_counter()
    return n, end - t - evaluating(t, end)

window_seen, probe_seen = [], []
app = None

def stamp(cls, seen, method="render"):
    original = getattr(cls, method)
    def drawn(self):
        seen.append((time.perf_counter(), app.window_start, app.probe_stale))
        return original(self)
    setattr(cls, method, drawn)

stamp(ContextWindow, window_seen, "_build_lines")
stamp(NextTokenBars, probe_seen, "_build_lines")  # both build their rows as they draw anew

frames_done = []  # when each compositor refresh returned, in order
_compositor_refresh = Screen._compositor_refresh
def compositor_refresh(self):
    _compositor_refresh(self)
    frames_done.append(time.perf_counter())
Screen._compositor_refresh = compositor_refresh

async def frame_done(drawn_at, timeout=10.0):
    # the end of the frame in which something drawn at drawn_at was drawn
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        i = bisect.bisect_left(frames_done, drawn_at)
        if i < len(frames_done):
            return frames_done[i]
        await asyncio.sleep(0.001)
    return deadline

async def first_seen(seen, since, start, fresh=False, timeout=10.0):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for t, s, stale in seen:
            if t >= since and s == start and not (fresh and stale):
                return t - since
        await asyncio.sleep(0.001)
    return timeout

async def step_boundary(at_least):
    # polls every millisecond: the step count is a plain int bumped after each step
    while steps_done < at_least:
        await asyncio.sleep(0.001)
    return steps_done

async def in_app(session, seconds, presses):
    global app, where
    app = NnioApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.corpus is None:
            await pilot.pause(0.05)
        first_step = steps_done
        await pilot.press("space")
        # timed from one step's end to another's, so no part-step is counted
        s0 = await step_boundary(first_step + 1)
        t0, c0 = time.perf_counter(), time.thread_time()
        await asyncio.sleep(seconds)
        s1 = await step_boundary(steps_done + 1)
        t1 = time.perf_counter()
        done = (s1 - s0, t1 - t0 - evaluating(t0, t1))
        ui_cpu = (time.thread_time() - c0, t1 - t0)
        where = "keys"  # steps while keys are pressed are kept apart from the timed ones
        window_ms, render_ms, probe_ms = [], [], []
        rng = random.Random(0)
        for i in range(presses):
            # every 5th press also waits for the probe; the pause before it is up to a step
            # long so that presses land at random points of a step
            wait_probe = i % 5 == 4
            await asyncio.sleep(rng.uniform(0.0, 1.0 if wait_probe else 0.3))
            expected = app.window_start + 1
            since = time.perf_counter()
            app._driver.send_message(events.Key("right", None))
            render = await first_seen(window_seen, since, expected)
            render_ms.append(1000 * render)
            window_ms.append(1000 * (await frame_done(since + render) - since))
            if wait_probe:
                probe = await first_seen(probe_seen, since, expected, fresh=True)
                probe_ms.append(1000 * (await frame_done(since + probe) - since))
        app.bridge.pause()
    return done, ui_cpu, (window_ms, render_ms, probe_ms)

# Per worker, headless and app segments alternate, headless first and last; the workers take
# turns within each round, so drift in the machine's load hits every side alike. Keys are
# pressed in each worker's last app segment, after its timing.
bare = {w: [] for w in workers}
opened = {w: [] for w in workers}
cpu = {w: [] for w in workers}
keys = {}
for r in range(rounds):
    for worker, session in sessions.items():
        where = "headless"
        bare[worker].append(headless(session, seconds / rounds / (2 if r == 0 else 1)))
        where = "app"
        last = r == rounds - 1
        done, ui, latencies = asyncio.run(
            in_app(session, seconds / rounds, presses if last else 0))
        opened[worker].append(done)
        cpu[worker].append(ui)
        if last:
            keys[worker] = latencies
for worker, session in sessions.items():
    where = "headless"
    bare[worker].append(headless(session, seconds / rounds / 2))

def rate(parts):
    return sum(n for n, _ in parts) * tokens_per_step / sum(t for _, t in parts)

def pcts(xs):
    xs = sorted(xs)
    return {"p50": xs[len(xs) // 2], "p95": xs[min(len(xs) - 1, int(len(xs) * 0.95))],
            "max": xs[-1]} if xs else None

results = {}
for worker in workers:
    results[worker] = {
        "headless": rate(bare[worker]), "in_app": rate(opened[worker]),
        "ui_cpu": sum(c for c, _ in cpu[worker]) / sum(t for _, t in cpu[worker]),
        "evaluations": [d for w, _, d in evaluations if w == worker],
        "step_ms": {where: 1000 * statistics.median(step_times[worker, where])
                    for where in ("headless", "app", "keys") if step_times[worker, where]},
        "window": pcts(keys[worker][0]), "window_render": pcts(keys[worker][1]),
        "probe": pcts(keys[worker][2])}
for close in closers.values():
    if close is not None:
        close()
print(json.dumps(results))
"""


def run(threads: int, seconds: float, presses: int, yield_ms: float, post_every: float,
        rounds: int, workers: list[str], preset: str) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(threads), str(seconds), str(presses), str(yield_ms),
           str(post_every), str(rounds), ",".join(workers), preset]
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
    parser.add_argument("--workers", nargs="+", choices=("thread", "process"),
                        default=["thread", "process"],
                        help="where training runs: a thread of the app's process, or a child"
                             " process (model.remote)")
    parser.add_argument("--preset", default="cpu",
                        help="model preset; tiny has short steps that are mostly Python, like"
                             " a GPU's")
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
          + f" --rounds {args.rounds} --workers {' '.join(args.workers)} --preset {args.preset}")
    results = {}
    for threads in args.threads:
        run_results = run(threads, args.seconds, args.presses, args.yield_ms, args.post_every,
                          args.rounds, args.workers, args.preset)
        for worker, r in run_results.items():
            results[threads, worker] = r
            print(f"\n{threads} torch thread(s), training in a {worker}, {args.preset} preset")
            print(f"  headless           {r['headless']:7.0f} tokens/s")
            print(f"  app open, training {r['in_app']:7.0f} tokens/s  = "
                  f"{r['in_app'] / r['headless']:4.0%} of headless  (target >= 95%)")
            print(f"  UI thread CPU while training: {r['ui_cpu']:.0%} of a core")
            evals = r["evaluations"]
            print(f"  validations, left out of both: {len(evals)},"
                  f" {sum(evals) / max(1, len(evals)):.2f} s each")
            ms = r["step_ms"]
            print(f"  median step: headless {ms['headless']:.0f} ms, app open {ms['app']:.0f}"
                  f" ms = {ms['headless'] / ms['app']:4.0%} speed; while keys were pressed "
                  f"{ms.get('keys', math.nan):.0f} ms")
            for what, name, target in (("window", "window", "  (target p95 <= 50 ms)"),
                                       ("window_render", "window, render starts", ""),
                                       ("probe", "probe", "")):
                p = r[what]
                if p is not None:
                    print(f"  key -> {name:21s}  p50 {p['p50']:6.1f} ms  p95 {p['p95']:6.1f}"
                          f" ms  max {p['max']:6.1f} ms{target}")
    if len(results) > 1:
        best = max(r["headless"] for r in results.values())
        for (threads, worker), r in results.items():
            print(f"in-app tokens/s with {threads} thread(s), {worker}, / best headless: "
                  f"{r['in_app'] / best:4.0%}")


if __name__ == "__main__":
    main()
