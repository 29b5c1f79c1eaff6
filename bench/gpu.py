"""GPU benchmark: GPT-2-124M shape tokens/s and peak memory vs a plain PyTorch step; tiny steps/s.

Run on a CUDA machine: python bench/gpu.py [--steps 20] [--batch 16]
Check on a CPU (tiny shapes, only that it runs): python bench/gpu.py --smoke

Each variant runs in its own subprocess, so its peak memory is its own.
- ours: Session.open(preset="gpt2") + Session.step: bf16 autocast, fused chunked head,
  fused AdamW (model/train.py).
- plain: the same GPT and AdamW (fused), bf16 autocast, full logits + F.cross_entropy.
- plain compiled: the same, with torch.compile on the model (skipped where unavailable).
- ours probed: ours, with a second thread probing a window every 50 ms meanwhile, as the
  app's looker does while keys are held (nnio_tui/looker.py): what the probes cost a step,
  and how long one takes beside it.
- tiny: Session.step of the tiny preset, steps per second (per-step overhead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
variant, device, preset, batch, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from model.allocator import tune_allocator
tune_allocator()
import torch
from model.device import synchronize
dev = torch.device(device)
overrides = {"batch_size": batch}
if variant in ("ours", "ours-probed", "tiny"):
    from model.api import Session
    s = Session.open(None, preset=preset, device=device, overrides=overrides,
                     checkpoint="/nonexistent/never-saved.safetensors")
    cfg = s._gpt_cfg
    step = s.step
else:
    from model.config import build_config
    from model.gpt import GPT
    from model.train import make_optimizer
    cfg, tcfg = build_config(preset, 100_277, overrides)
    torch.manual_seed(0)
    model = GPT(cfg).to(dev)
    opt = make_optimizer(model, tcfg, dev)
    run = model
    if variant == "plain-compiled":
        if not hasattr(torch, "compile"):
            print(json.dumps({"skipped": "torch.compile is unavailable"})); sys.exit(0)
        run = torch.compile(model)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    def step():
        idx = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size + 1), device=dev)
        with amp:
            _, loss = run(idx[:, :-1], idx[:, 1:], fused=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
for _ in range(3):
    step()  # warm-up (and compilation)
synchronize(dev)
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats(dev)
probe_ms, done = [], None
if variant == "ours-probed":
    import threading
    done = threading.Event()
    def prober():
        i = 0
        while not done.wait(0.05):
            t0 = time.perf_counter()
            s.probe(i % 1000, 8, k=32)
            probe_ms.append(1000 * (time.perf_counter() - t0))
            i += 1
    probing = threading.Thread(target=prober)
    probing.start()
t = time.perf_counter()
for _ in range(steps):
    step()
synchronize(dev)
dt = time.perf_counter() - t
if done is not None:
    done.set()
    probing.join()  # a thread still in torch at exit would abort the process
peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
probe_ms.sort()
print(json.dumps({"tokens_per_s": steps * batch * cfg.block_size / dt, "steps_per_s": steps / dt,
                  "ms_per_step": 1000 * dt / steps, "peak_bytes": peak,
                  "probe_ms": [probe_ms[len(probe_ms) // 2], probe_ms[int(len(probe_ms) * 0.95)]]
                  if probe_ms else None}))
"""


def run(variant: str, device: str, preset: str, batch: int, steps: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, variant, device, preset, str(batch), str(steps)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes on the CPU: checks the script runs, measures nothing")
    args = parser.parse_args()
    flags = " --smoke" if args.smoke else f" --steps {args.steps} --batch {args.batch}"
    print(f"command: python bench/gpu.py{flags}")
    device, preset, batch, steps = "cuda", "gpt2", args.batch, args.steps
    if args.smoke:
        device, preset, batch, steps = "cpu", "tiny", 2, 2
    rows = {}
    for variant in ("ours", "ours-probed", "plain", "plain-compiled"):
        r = rows[variant] = run(variant, device, preset, batch, steps)
        if "tokens_per_s" not in r:
            print(f"  {variant:15s} {r}")
            continue
        peak = f"{r['peak_bytes'] / 2**30:6.2f} GiB peak" if r["peak_bytes"] else "(no CUDA peak)"
        print(f"  {variant:15s} {preset} B{batch}: {r['tokens_per_s']:9.0f} tokens/s "
              f"{r['ms_per_step']:7.1f} ms/step  {peak}")
    probed = rows["ours-probed"]
    if "ms_per_step" in rows["ours"] and probed.get("probe_ms"):
        p50, p95 = probed["probe_ms"]
        print(f"  probes beside the step: step {probed['ms_per_step'] / rows['ours']['ms_per_step'] - 1:+.0%}"
              f" with a probe every 50 ms; a probe took p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    for base in ("plain", "plain-compiled"):
        if "tokens_per_s" in rows["ours"] and "tokens_per_s" in rows[base]:
            print(f"  ours / {base}: {rows['ours']['tokens_per_s'] / rows[base]['tokens_per_s']:.2f}x")
    tiny = run("tiny", device, "tiny", 4, 10 if args.smoke else 200)
    if "steps_per_s" in tiny:
        print(f"  tiny preset: {tiny['steps_per_s']:.0f} steps/s on {device}")
    else:
        print(f"  tiny preset: {tiny}")


if __name__ == "__main__":
    main()
