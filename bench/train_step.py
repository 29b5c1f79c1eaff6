"""Training step benchmark: nnio-tui's step vs a naive PyTorch step, and achieved FLOP/s.

Run: python bench/train_step.py [--steps 8] [--big-steps 3] [--rounds 2] [--all-variants]

Each variant runs in its own subprocess, because glibc's allocator settings (mallopt) are
process-wide and a tuned process would flatter the naive step. Variants alternate in
rounds (ours, naive untuned, naive tuned, ours, ...) so a noisy neighbour hurts them alike;
the best round of each is reported.

- ours: the real path, Session.open + Session.step (fused head, fused AdamW, allocator tuned
  as `nnio-tui` does before any thread starts), at --precision auto: bf16 head matmuls on a
  CPU with bf16 dot products, else float32 (then it is the same as ours-fp32).
- ours-fp32: the same with --precision fp32.
- naive: the same GPT and AdamW settings, full logits + F.cross_entropy, torch's default
  AdamW; "untuned" leaves glibc alone, "tuned" applies the same mallopt calls as ours;
  "bf16" is tuned and runs under torch.autocast("cpu", bfloat16), the one-line way a
  PyTorch user would ask for bf16.

FLOP/s counts the matmuls of forward + backward per token (PaLM's convention, causal mask
not discounted): 6 * L * 12 * C^2 (the blocks' weights) + 12 * L * C * T (attention scores
and values) + 6 * V * C (the head: logits, grad of h, grad of the weight), V the real vocab.
The reference is torch.mm of two 2048 x 2048 matrices, fp32 and bf16, timed in the same
subprocess right before and after the training steps, at the same thread count; a bf16
step is compared with the bf16 rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.cpu_flags import cpu_has_bf16_dot

SHAPES = {
    # name: (overrides, batch)
    "cpu default 4x128 T64 B16": ({}, 16),
    "6x384 T256 B8": ({"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256}, 8),
}

CHILD = r"""
import json, math, sys, time
variant, overrides, batch, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if variant != "naive-untuned":
    from model.allocator import tune_allocator
    tune_allocator()  # first thing, as nnio_tui.cli does
import torch

def matmul_rate(dtype):
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(5):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    return 2 * 2048 ** 3 / best

overrides = {**overrides, "batch_size": batch}
low = None
if variant.startswith("ours"):
    from model.api import Session
    s = Session.open(None, preset="cpu", device="cpu", overrides=overrides,
                     checkpoint="/nonexistent/never-saved.safetensors",
                     precision="fp32" if variant == "ours-fp32" else "auto")
    cfg = s._gpt_cfg
    step = s.step
    low = s._trainer.low_dtype
else:
    from model.config import build_config
    from model.gpt import GPT
    cfg, tcfg = build_config("cpu", 100_277, overrides)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.learning_rate,
                            betas=(tcfg.beta1, tcfg.beta2), weight_decay=tcfg.weight_decay)
    low = torch.bfloat16 if variant == "naive-bf16" else None
    def step():
        idx = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size + 1))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low is not None):
            _, loss = model(idx[:, :-1], idx[:, 1:], fused=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

ref = low or torch.float32
before = matmul_rate(ref)
step(); step()  # warm-up: first-touch of buffers and optimizer state
t = time.perf_counter()
for _ in range(steps):
    step()
dt = time.perf_counter() - t
after = matmul_rate(ref)
L, C, T, V = cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.vocab_size
flops_per_token = 6 * L * 12 * C * C + 12 * L * C * T + 6 * V * C
tokens = steps * batch * T
print(json.dumps({"tokens_per_s": tokens / dt, "flops": flops_per_token * tokens / dt,
                  "mm_flops": (before + after) / 2, "threads": torch.get_num_threads(),
                  "dtype": str(ref).removeprefix("torch.")}))
"""


def run(variant: str, overrides: dict, batch: int, steps: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, variant, json.dumps(overrides), str(batch), str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8, help="timed steps at the cpu shape")
    parser.add_argument("--big-steps", type=int, default=3, help="timed steps at 6x384")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=list(SHAPES), help="one shape only")
    parser.add_argument("--all-variants", action="store_true",
                        help="also the bf16 variants on a CPU that only emulates bf16")
    args = parser.parse_args()
    print(f"command: python bench/train_step.py --steps {args.steps} --big-steps "
          f"{args.big_steps} --rounds {args.rounds}" + " --all-variants" * args.all_variants)
    variants = ("ours", "ours-fp32", "naive-untuned", "naive-tuned", "naive-bf16")
    if not (args.all_variants or cpu_has_bf16_dot()):
        # Without bf16 dot products ours runs float32 (it is ours-fp32), and autocast's
        # emulated bf16 took over 10 minutes for the naive step's 10 steps on a Zen 3.
        variants = ("ours", "naive-untuned", "naive-tuned")
        print("this CPU has no bf16 dot products: ours is float32; skipping ours-fp32 and"
              " naive-bf16 (--all-variants runs them)")
    for i, (name, (overrides, batch)) in enumerate(SHAPES.items()):
        if args.only and name != args.only:
            continue
        steps = args.steps if i == 0 else args.big_steps
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for v in variants:
                r = run(v, overrides, batch, steps)
                if v not in best or r["tokens_per_s"] > best[v]["tokens_per_s"]:
                    best[v] = r
        ours = best["ours"]
        print(f"\n{name}  ({steps} timed steps, best of {args.rounds} rounds, "
              f"{ours['threads']} torch threads)")
        for v in variants:
            r = best[v]
            print(f"  {v:14s} {r['tokens_per_s']:8.0f} tokens/s  {r['flops'] / 1e9:6.1f} GFLOP/s"
                  f"  = {r['flops'] / r['mm_flops']:4.0%} of 2048^2 {r['dtype']} mm"
                  f" ({r['mm_flops'] / 1e9:.0f} GFLOP/s)")
        for v in variants[1:]:
            ratio = ours["tokens_per_s"] / best[v]["tokens_per_s"]
            target = i == 0 and v.startswith("naive")
            print(f"  ours / {v:14s} {ratio:5.2f}x" + ("  (target >= 2x)" if target else ""))
        print(f"  ours: achieved / {ours['dtype']} matmul FLOP/s "
              f"{ours['flops'] / ours['mm_flops']:.0%}  (target >= 60%)")


if __name__ == "__main__":
    main()
