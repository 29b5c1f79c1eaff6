"""Corpus benchmark: tokenizing 100 MB vs tiktoken's own batch encode, and the cached second open.

Run: python bench/corpus_open.py [--mb 100] [--jsonl | --stdin]
--jsonl writes the same text as a .jsonl of one record per paragraph (many short documents);
--stdin pipes the text file into open_corpus("-"), as `nnio-tui train -` reads it.
Each measurement runs in a fresh subprocess so that peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OURS = """
import json, os, resource, sys, time
from model.vocab import load_encoding
from model.corpus import open_corpus
enc = load_encoding()
t = time.perf_counter()
c = open_corpus(sys.argv[1], enc)
n = c.n_tokens
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "tokens": n,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

THEIRS = """
import json, os, resource, sys, time
from model.vocab import load_encoding
enc = load_encoding()
text = open(sys.argv[1], encoding="utf-8").read()
t = time.perf_counter()
# tiktoken's own parallel path: split into lines groups, encode_ordinary_batch over threads.
lines = text.splitlines(keepends=True)
step = max(1, len(lines) // 256)
batches = ["".join(lines[i:i + step]) for i in range(0, len(lines), step)]
n = sum(len(ids) for ids in enc.encode_ordinary_batch(batches, num_threads=os.cpu_count()))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "tokens": n,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


THEIRS_JSONL = """
import json, os, resource, sys, time
from model.vocab import load_encoding
enc = load_encoding()
with open(sys.argv[1], encoding="utf-8") as f:
    lines = f.readlines()
t = time.perf_counter()
texts = [json.loads(line)["text"] for line in lines]
ids = enc.encode_ordinary_batch(texts, num_threads=os.cpu_count())
n = sum(len(x) for x in ids) + len(texts) - 1  # and an end-of-text between two records
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "tokens": n,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def as_jsonl(text_path: Path, path: Path) -> None:
    """One record per paragraph of the text file, written as it is read."""
    with open(text_path, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        para: list[str] = []
        for line in f:
            if line.strip():
                para.append(line)
            elif para:
                out.write(json.dumps({"text": "".join(para)}) + "\n")
                para = []
        if para:
            out.write(json.dumps({"text": "".join(para)}) + "\n")


def make_corpus(path: Path, megabytes: int) -> None:
    """Repeat the bundled corpus, numbering each copy, up to the size asked for."""
    parts = sorted((ROOT / "sample_data" / "corpus").glob("*.txt"))
    base = "\n\n".join(p.read_text(encoding="utf-8") for p in parts)
    with open(path, "w", encoding="utf-8") as f:
        written, copy = 0, 0
        while written < megabytes * 1_000_000:
            chunk = f"Copy {copy}.\n{base}\n"
            f.write(chunk)
            written += len(chunk.encode())
            copy += 1


def run(script: str, path: Path, env: dict, stdin: bool = False) -> dict:
    with open(path, "rb") as f:
        out = subprocess.run([sys.executable, "-c", script, "-" if stdin else str(path)],
                             stdin=f if stdin else subprocess.DEVNULL, capture_output=True,
                             text=True, check=True, cwd=ROOT, env=env)
    return json.loads(out.stdout)


def main() -> None:
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--jsonl", action="store_true", help="one record per paragraph")
    kind.add_argument("--stdin", action="store_true", help="the text piped into stdin")
    args = parser.parse_args()
    print("command: python bench/corpus_open.py " + " ".join(sys.argv[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        make_corpus(path, args.mb)
        if args.jsonl:
            as_jsonl(path, Path(tmp) / "big.jsonl")
            path.unlink()
            path = Path(tmp) / "big.jsonl"
        size = path.stat().st_size / 1e6
        env = {**os.environ, "NNIO_TUI_CACHE_DIR": str(Path(tmp) / "cache")}
        theirs = run(THEIRS_JSONL if args.jsonl else THEIRS, path, env)
        first = run(OURS, path, env, args.stdin)
        second = run(OURS, path, env, args.stdin)
    ours_rate, their_rate = size / first["seconds"], size / theirs["seconds"]
    kind = " of .jsonl" if args.jsonl else " on stdin" if args.stdin else ""
    print(f"corpus: {size:.0f} MB{kind}, {first['tokens']:,} tokens")
    print(f"  tokenize, nnio-tui open_corpus : {ours_rate:6.1f} MB/s ({first['seconds']:.2f} s)")
    print(f"  tokenize, tiktoken batch encode: {their_rate:6.1f} MB/s ({theirs['seconds']:.2f} s)")
    print(f"  ratio nnio-tui / tiktoken      : {ours_rate / their_rate:.2f}  (target >= 0.80)")
    print(f"  second open (cached, mmap)     : {second['seconds']:.3f} s  (target <= 0.3)")
    print(f"  peak memory per token, first   : {first['maxrss'] / first['tokens']:.1f} bytes")
    print(f"  peak memory per token, second  : {second['maxrss'] / second['tokens']:.2f} bytes")
    # tiktoken's batches split at other places, so only our two opens must agree exactly
    # (records are encoded whole on both sides, so there the counts agree too).
    assert first["tokens"] == second["tokens"]
    assert not args.jsonl or first["tokens"] == theirs["tokens"]


if __name__ == "__main__":
    main()
