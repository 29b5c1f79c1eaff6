"""Probe latency while training: a new window's probe beside the step vs after it.

Run: python bench/probe_latency.py [--presses 100] [--rounds 2] [--gap 0.4]
     [--workers process thread] [--preset cpu]

For each worker (a child process, the app's default, or a thread), one subprocess opens a
session and drives a TrainingBridge as the app does, without the app: training runs, and
keys send a window one token to the right at random moments (a gap of 0 to --gap seconds).
Each round has five segments of the same length, in turn: no keys; keys with the window
probed beside the step (TrainingBridge.PROBE_BESIDE, the app's default); keys with the
probe waiting for the step to end (as before the looker); then a key held down (30
windows a second, not waiting for their probes) each way. It prints, for both ways, the
time from sending the window to its probe being posted, the probes posted per second while
the key is held, and the median training step in each segment, so the cost of the probes
to training is measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("beside", "after")


def child(worker: str, preset: str, presses: int, rounds: int, gap: float,
          looker_rate: float | None) -> dict:
    """Runs in a subprocess of its own: returns latencies (ms) and step times (s) per segment."""
    sys.path.insert(0, str(ROOT))
    from nnio_tui.looker import Looker
    from nnio_tui.messages import ProbeReady
    from nnio_tui.training import TrainingBridge
    from nnio_tui.training_commands import Look

    if looker_rate is not None:
        Looker.RATE = looker_rate
    options = {"corpus": None, "preset": preset, "device": "cpu",
               "checkpoint": f"{tempfile.mkdtemp()}/run.safetensors"}
    if worker == "process":
        from model.remote import RemoteSession, open_new

        session = RemoteSession(functools.partial(open_new, options))
    else:
        from model.api import Session, tune_allocator, tune_cpu

        tune_allocator()
        tune_cpu(None)
        session = Session.open(**options)

    segment = "warm-up"
    steps: dict[str, list[float]] = {}
    plain_step = session.step

    def timed_step():
        t = time.perf_counter()
        report = plain_step()
        steps.setdefault(segment, []).append(time.perf_counter() - t)
        return report

    session.step = timed_step
    posted: dict[int, float] = {}

    def post(message) -> None:
        if isinstance(message, ProbeReady):
            posted.setdefault(message.start, time.perf_counter())

    bridge = TrainingBridge(post, session=session)
    stop = threading.Event()
    worker_thread = threading.Thread(target=bridge.serve, args=(stop.is_set,), daemon=True)
    worker_thread.start()
    if not bridge.wait_idle(120):
        sys.exit("the session did not open")
    bridge.resume()
    time.sleep(3)  # AdamW made, the first steps done
    rng = random.Random(0)
    latency = {mode: [] for mode in MODES}
    start = 1000
    per_round = presses // rounds
    held_rate = {mode: [] for mode in MODES}
    for _ in range(rounds):
        length_s = per_round * gap / 2  # the keys segments' expected length
        segment = "no keys"
        time.sleep(length_s)
        for mode in MODES:
            segment = f"held {mode}"
            bridge.PROBE_BESIDE = mode == "beside"
            shown = len(posted)
            end = time.perf_counter() + length_s
            while time.perf_counter() < end:
                start += 1
                bridge.send(Look(start, 8))
                time.sleep(1 / 30)
            time.sleep(0.3)  # the last window's probe lands
            held_rate[mode].append((len(posted) - shown) / length_s)
        for mode in MODES:
            segment = mode
            bridge.PROBE_BESIDE = mode == "beside"
            for _ in range(per_round):
                time.sleep(rng.uniform(0.0, gap))
                start += 1
                sent = time.perf_counter()
                bridge.send(Look(start, 8))
                while start not in posted and time.perf_counter() - sent < 10:
                    time.sleep(0.0005)
                latency[mode].append(1000 * (posted.get(start, sent + 10) - sent))
    segment = "done"
    bridge.pause()
    stop.set()
    worker_thread.join(60)
    if worker == "process":
        session.close()
    return {"latency_ms": latency, "step_s": steps,
            "held_per_s": {mode: statistics.mean(r) for mode, r in held_rate.items()}}


def pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"p50 {xs[len(xs) // 2]:6.1f} ms  p95 {p95:6.1f} ms  max {xs[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100, help="keys per way of probing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.4,
                        help="keys come 0 to this many seconds apart (0.2 s on average)")
    parser.add_argument("--workers", nargs="+", choices=("process", "thread"),
                        default=["process", "thread"])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--looker-rate", type=float, default=None,
                        help="Looker.RATE, the looker's sustained probes a second"
                             " (default: the app's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.preset, args.presses, args.rounds, args.gap,
                               args.looker_rate)))
        return
    print(f"command: python bench/probe_latency.py --presses {args.presses} --rounds "
          f"{args.rounds} --gap {args.gap:g} --workers {' '.join(args.workers)} --preset "
          f"{args.preset}" + (f" --looker-rate {args.looker_rate:g}"
                               if args.looker_rate is not None else ""))
    for worker in args.workers:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", worker,
               "--presses", str(args.presses), "--rounds", str(args.rounds),
               "--gap", str(args.gap), "--preset", args.preset]
        if args.looker_rate is not None:
            cmd += ["--looker-rate", str(args.looker_rate)]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        lat, steps = r["latency_ms"], r["step_s"]
        step = {k: 1000 * statistics.median(v) for k, v in steps.items() if v}
        print(f"\ntraining in a {worker}, {args.preset} preset, a key every "
              f"{args.gap / 2:g} s on average")
        for mode in MODES:
            print(f"  key -> probe posted, {mode:6s} the step: {pcts(lat[mode])}")
        ratio = statistics.median(lat["after"]) / statistics.median(lat["beside"])
        print(f"  p50 after / beside: {ratio:.1f}x")
        print(f"  median step: no keys {step['no keys']:.0f} ms, keys with probes beside "
              f"{step['beside']:.0f} ms ({step['beside'] / step['no keys'] - 1:+.0%}), "
              f"after {step['after']:.0f} ms ({step['after'] / step['no keys'] - 1:+.0%})")
        held = r["held_per_s"]
        print(f"  key held (30 windows/s): probes posted {held['beside']:.1f}/s beside, "
              f"{held['after']:.1f}/s after; median step "
              f"{step['held beside'] / step['no keys'] - 1:+.0%} beside, "
              f"{step['held after'] / step['no keys'] - 1:+.0%} after")


if __name__ == "__main__":
    main()
