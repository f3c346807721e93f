"""Child processes in tests: their environment, waiting on them, a fake pipeline for sweeps."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """The environment of a ``gan-init`` subprocess: this checkout first, W&B offline."""
    return dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline")


def wait_for(condition, what: str, limit: float = 120.0) -> None:
    """Poll ``condition`` (a failure bound for a stuck process, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


# A stand-in for ``gan-init pipeline`` in a sweep: appends its arguments to $CALLS, exits 3 for
# init_strategy "broken", writes its run folder's summary.json ("diverged" for "unstable") with
# eval/swd = seed, naming the sweep run that started it, as the pipeline does.
FAKE_RUN = textwrap.dedent(
    """
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    if args["init_strategy"] == "broken":
        sys.exit(3)
    sweep_run = os.environ["GAN_INIT_SWEEP_RUN"]
    run_dir = os.path.join(os.environ["GAN_INIT_RUNS_DIR"], "fake", sweep_run.replace("/", "_"))
    os.makedirs(run_dir, exist_ok=True)
    status = "diverged" if args["init_strategy"] == "unstable" else "finished"
    summary = {"status": status, "run_dir": run_dir, "sweep_run": sweep_run, "dims": 2}
    summary |= {"init_strategy": args["init_strategy"], "seed": int(args["seed"]), "grow": "none"}
    summary["metrics"] = {"eval/swd": float(args["seed"])}
    json.dump(summary, open(os.path.join(run_dir, "summary.json"), "w"))
    """
)


def fake_sweep_file(tmp_path: Path, strategies: list[str]) -> Path:
    """A grid over ``strategies`` x seeds 0, 1 that runs ``FAKE_RUN``."""
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    sweep = {
        "method": "grid",
        "metric": {"name": "eval/swd", "goal": "minimize"},
        "parameters": {"init_strategy": {"values": strategies}, "seed": {"values": [0, 1]}},
        "command": ["${interpreter}", str(tmp_path / "fake_run.py"), "${args}"],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path
