"""Start-up benchmark: launching the real `nnio-tui` command to its first frame and first probe.

Run: python bench/startup.py [--runs 3] [--workers process thread]

Each run starts `python -m nnio_tui` (what the `nnio-tui` script runs) in a 100x30
pseudo-terminal and reads what it draws, from the moment before the process is spawned:
- first frame: the footer's "Help" is on screen (the loading view, before torch; its footer
  lists only the keys that work before the session opens, so not "Run/pause");
- first probe: the next-token panel's "entropy" line is on screen (torch loaded, corpus
  opened, model built, one forward pass).
The first run uses an empty token cache (the bundled corpus is tokenized), the others reuse
it, as a second launch would. It also prints how long `import nnio_tui.cli` and
`import nnio_tui.app` take in a fresh interpreter (python -X importtime shows the parts).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pty_app import PtyApp

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78c]|\x1b\][^\x07]*\x07")


def launch(env: dict, worker: str, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from spawn to the first frame and to the first probe."""
    app = PtyApp(env, ["--device", "cpu", "--worker", worker])
    seen, frame, probe = b"", None, None
    try:
        while probe is None and not app.closed and time.perf_counter() - app.started < timeout:
            data = app.read(0.01)
            if not data:
                continue
            seen += data
            now = time.perf_counter() - app.started
            text = ANSI.sub(b"", seen)
            if frame is None and b"Help" in text:
                frame = now
            if b"entropy " in text:
                probe = now
    finally:
        app.quit()
    if frame is None or probe is None:
        sys.exit(f"no {'frame' if frame is None else 'probe'} within {timeout:.0f} s; "
                 f"last output: {ANSI.sub(b'', seen)[-400:]!r}")
    return frame, probe


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", nargs="+", choices=("process", "thread"),
                        default=["process", "thread"], help="the app's --worker, in turn")
    args = parser.parse_args()
    print(f"command: python bench/startup.py --runs {args.runs}"
          f" --workers {' '.join(args.workers)}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TERM": "xterm-256color", "NNIO_TUI_CACHE_DIR": f"{tmp}/cache",
               "XDG_DATA_HOME": f"{tmp}/data", "COLUMNS": "100", "LINES": "30"}
        env.pop("TEXTUAL", None)
        for run in range(args.runs):
            for i, worker in enumerate(args.workers):
                frame, probe = launch(env, worker)
                cache = "empty token cache" if run == i == 0 else "cached tokens    "
                print(f"  run {run + 1}, {worker:7s} ({cache}): first frame {frame:5.2f} s"
                      f" (target <= 1.0)   first probe {probe:5.2f} s")
    for module in ("nnio_tui.cli", "nnio_tui.app", "torch"):
        print(f"  import {module:13s} {import_time(module):5.2f} s (fresh interpreter)")


if __name__ == "__main__":
    main()
