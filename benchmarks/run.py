"""`make bench`: run every benchmark in this folder; each prints ratios measured in one run.

Scripts that take ``--out`` write their JSON under ``runs/bench/``; all of it, with each
script's printed lines and wall time, is gathered in ``runs/bench/bench.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
out_dir = Path("runs/bench")
out_dir.mkdir(parents=True, exist_ok=True)
# Options that keep `make bench` within about 30 minutes on a 2-core CPU (see each script's --help).
ARGS = {
    "speed": ["--no-compile", "--rounds", "4", "--steps", "3"],
    "metrics_timing": [],
    # Where a sweep run's time goes; runs side by side; a step at 1 and 2 threads per config.
    "run_breakdown": [],
    "parallel": ["--shrink", "4"],  # the 3,600-image runs; full size takes 4x
    "thread_steps": [],
    "thread_runs": ["--shrink", "4"],  # whole runs at 1 and 2 threads, alone and in pairs
}
failed, record = [], {}
for script in sorted(here.glob("*.py")):
    if script.name == "run.py":
        continue
    name = script.stem
    print(f"== {name}", flush=True)
    cmd = [sys.executable, str(script), *ARGS.get(name, [])]
    if name in ARGS:
        cmd += ["--out", str(out_dir / f"{name}.json")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="", flush=True)
    entry = {"seconds": round(time.perf_counter() - start, 1), "lines": proc.stdout.splitlines()}
    if (out_dir / f"{name}.json").is_file() and name in ARGS:
        entry["results"] = json.loads((out_dir / f"{name}.json").read_text())
    record[name] = entry
    if proc.returncode != 0:
        failed.append(script.name)
(out_dir / "bench.json").write_text(json.dumps(record, indent=2))
print(f"wrote {out_dir / 'bench.json'}")
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
