"""Runs side by side on this machine's CPUs, measured in one run (docs/performance.md):

(a) two ``gan-init fit`` runs of the 2D sweep config at once against one alone, each at the thread
    policy's default: each concurrent run's speed as a fraction of the lone run's (the ideal
    with 2 cores shared by 2 runs is 0.5; target >= 0.45).
(b) sweep-style runs per hour: ``gan-init sweep`` of two runs as ``make sweep-2d`` runs them
    (``gan-init pipeline``, scratch, seeds 0 and 1, the same config: training, then samples),
    with the new defaults (on 2 CPUs: both at once, one thread each) against one at a time at 2
    threads (the old behaviour, but with the passive OpenMP wait the policy now sets; >= 2x).

    python benchmarks/parallel.py [--config FILE] [--shrink 20]

Each run is the whole command (process start to exit) in its own temporary folder; times are
wall seconds. ``--shrink N`` divides the config's images per level by N (for trying the
benchmark, not for its numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline", WANDB_SILENT="true")
    for name in ("GAN_INIT_THREADS", "GAN_INIT_THREADS_GIVEN", "OMP_NUM_THREADS"):
        out.pop(name, None)  # each command picks its threads by the policy
    return out


def fit_cmd(config: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "gan_init", "fit", "--config", config, "--run_dir", str(run_dir)]


def shrunk(config: str, factor: int, tmp: Path) -> str:
    """A copy of ``config`` with its images per level divided by ``factor``."""
    cfg = yaml.safe_load(Path(config).read_text())
    for cb in cfg["trainer"]["callbacks"]:
        if cb["class_path"].endswith("ProgressiveSchedule"):
            for key in ("train_images", "fade_images"):
                cb["init_args"][key] = [n // factor for n in cb["init_args"][key]]
    out = tmp / Path(config).name
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(out)


def timed(cmds: list[list[str]], cwd: Path) -> list[float]:
    """Start ``cmds`` at once; each one's wall seconds."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c in cmds
    ]
    ends = []
    for proc in procs:
        _, err = proc.communicate()
        ends.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"failed: {shlex.join(proc.args)}\n{err.decode(errors='replace')[-2000:]}")
    return ends


def concurrent_fits(config: str, tmp: Path) -> dict:
    (alone,) = timed([fit_cmd(config, tmp / "alone")], tmp)
    pair = timed([fit_cmd(config, tmp / f"pair{i}") for i in (0, 1)], tmp)
    return {"alone_s": alone, "pair_s": pair, "speed": [alone / s for s in pair]}


def sweeps(config: str, tmp: Path) -> dict:
    out = {}
    for label, options in (("new", []), ("old", ["--parallel", "1", "--threads", "2"])):
        folder = tmp / f"sweep-{label}"
        folder.mkdir()
        sweep = {
            "method": "grid",
            "parameters": {
                "dims": {"value": 2},
                "init_strategy": {"value": "scratch"},
                "seed": {"values": [0, 1]},
                "noise_config": {"value": config},
            },
            "command": ["gan-init", "pipeline", "${args}"],
        }
        (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
        cmd = [sys.executable, "-m", "gan_init", "sweep", str(folder / "sweep.yaml")]
        (wall,) = timed([[*cmd, "--runs_dir", str(folder / "runs"), *options]], folder)
        state = json.loads((folder / "runs" / "sweeps" / "sweep.json").read_text())
        assert [r["state"] for r in state["runs"]] == ["finished"] * 2, state
        out[label] = {"wall_s": wall, "runs_per_hour": 2 * 3600 / wall, "options": options}
    out["ratio"] = out["new"]["runs_per_hour"] / out["old"]["runs_per_hour"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/configs/noise_2d_sweep.yaml")
    p.add_argument("--shrink", type=int, default=1, help="images per level / N (to try it)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    config = str(REPO / args.config)
    with tempfile.TemporaryDirectory() as tmp:
        if args.shrink > 1:
            config = shrunk(config, args.shrink, Path(tmp))
        a = concurrent_fits(config, Path(tmp))
        b = sweeps(config, Path(tmp))
    speed = ", ".join(f"{s:.2f}x" for s in a["speed"])
    shrink = f" (images per level / {args.shrink})" if args.shrink > 1 else ""
    print(f"(a) gan-init fit {args.config}{shrink}")
    print(f"    alone {a['alone_s']:.1f} s; two at once {a['pair_s'][0]:.1f} s and "
          f"{a['pair_s'][1]:.1f} s: each at {speed} the lone run's speed (target >= 0.45x)")  # fmt: skip
    print("(b) gan-init sweep of two scratch runs of that config (gan-init pipeline)")
    for label, what in (("new", "new defaults"), ("old", "--parallel 1 --threads 2")):
        r = b[label]
        print(f"    {what:<26} {r['wall_s']:6.1f} s  {r['runs_per_hour']:6.1f} runs/hour")
    print(f"    ratio {b['ratio']:.2f}x (target >= 2x)")
    print(f"    (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs when it ended)")
    if args.out:
        Path(args.out).write_text(json.dumps({"a": a, "b": b}, indent=2))


if __name__ == "__main__":
    main()
