"""Learning benchmark: loss after N steps per learning rate and seed, side by side in one run.

Run: python bench/learning.py [--preset cpu] [--steps 200] [--lr 2e-3 3e-3] [--seeds 0 1]

Judges a change to a preset's learning rate (or warmup, batch size) by what it does to the
loss, not the clock: each (lr, seed) trains a fresh model on the bundled corpus with the real
path (Session.open + Session.step), in this process, one after the other. Printed per run:
- val: the validation loss after the last step (the same fixed validation windows for all);
- best val: the lowest of the validations taken every --eval-every steps;
- jump: the largest rise of the training loss from one step to the next (a spike on the curve);
- final train: the mean training loss of the last 10 steps.
The unigram baseline is the validation tokens' cross-entropy under the training split's token
frequencies, each count plus 0.01 (add-one would outweigh a small corpus's counts with
the 100,277 ids it never uses): a model that beats it has learnt more than token counts.
A new --lr keeps the preset's decay ratio (min_lr / learning_rate), as the CLI's --lr does.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from model.api import Session, tune_allocator, tune_cpu
from model.config import PRESETS

NEVER_SAVED = "/nonexistent/bench-learning.safetensors"  # nothing here saves


def unigram_baseline(ids: np.ndarray, n_vocab: int, val_start: int, add: float = 0.01) -> float:
    """Cross-entropy (nats) of ids[val_start:] under the counts of ids[:val_start], plus add."""
    counts = np.bincount(ids[:val_start], minlength=n_vocab).astype(np.float64) + add
    logp = np.log(counts / counts.sum())
    return float(-logp[ids[val_start:]].mean())


def largest_jump(losses: list[float]) -> tuple[float, int]:
    """The largest rise from one step's loss to the next, and the step it happened at (1-based)."""
    best, at = 0.0, 0
    for i in range(1, len(losses)):
        rise = losses[i] - losses[i - 1]
        if rise > best:
            best, at = rise, i + 1
    return best, at


def run_one(preset: str, lr: float | None, seed: int, steps: int, eval_every: int,
            val_batches: int) -> dict:
    overrides = {} if lr is None else {"learning_rate": lr}
    session = Session.open(None, preset=preset, device="cpu", seed=seed, overrides=overrides,
                           checkpoint=NEVER_SAVED)
    losses, vals = [], []
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        losses.append(session.step().loss)
        if i % eval_every == 0 or i == steps:
            vals.append(session.evaluate(val_batches))
    seconds = time.perf_counter() - t0
    jump, jump_at = largest_jump(losses)
    tail = losses[-10:]
    return {"val": vals[-1], "best_val": min(vals), "jump": jump, "jump_at": jump_at,
            "final_train": sum(tail) / len(tail), "s_per_step": seconds / steps,
            "session": session}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, nargs="*", default=None,
                        help="peak learning rates to compare (default: the preset's own)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.steps < 1 or args.eval_every < 1:
        parser.error("--steps and --eval-every must be 1 or more")

    tune_allocator()
    tune_cpu(args.threads)
    own_lr = PRESETS[args.preset][1].learning_rate
    rates = args.lr or [own_lr]
    print("command: python bench/learning.py " + " ".join(sys.argv[1:]))
    print(f"preset {args.preset}, {args.steps} steps, validation every {args.eval_every} steps "
          f"on {args.val_batches} batches, seeds {args.seeds}")

    baseline = None
    print(f"{'lr':>9} {'seed':>4} {'val':>7} {'best val':>8} {'jump':>6} {'at':>5} "
          f"{'final train':>11} {'s/step':>7}")
    by_rate: dict[float, list[dict]] = {}
    for lr in rates:
        for seed in args.seeds:
            result = run_one(args.preset, None if lr == own_lr else lr, seed, args.steps,
                             args.eval_every, args.val_batches)
            session = result.pop("session")
            if baseline is None:
                ids = np.asarray(session.token_ids(0, session.n_tokens), dtype=np.int64)
                baseline = unigram_baseline(ids, session.vocab_size, session.info().train_tokens)
            by_rate.setdefault(lr, []).append(result)
            print(f"{lr:>9.2e} {seed:>4} {result['val']:>7.3f} {result['best_val']:>8.3f} "
                  f"{result['jump']:>6.2f} {result['jump_at']:>5} {result['final_train']:>11.3f} "
                  f"{result['s_per_step']:>7.3f}", flush=True)
    print(f"uniform over the vocabulary: {math.log(session.vocab_size):.3f} nats; "
          f"unigram baseline: {baseline:.3f} nats")
    print("mean over seeds:")
    for lr, results in by_rate.items():
        mean_val = sum(r["val"] for r in results) / len(results)
        worst_jump = max(r["jump"] for r in results)
        mark = "  (the preset's own)" if lr == own_lr else ""
        print(f"  lr {lr:.2e}: val {mean_val:.3f}, largest jump {worst_jump:.2f} nats, "
              f"val - unigram {mean_val - baseline:+.3f}{mark}")


if __name__ == "__main__":
    main()
