"""Runs side by side on this machine's CPUs, measured in one run (docs/performance.md):

(a) two ``gan-init fit`` runs of the 2D sweep config at once against one alone, each at the thread
    policy's default: each concurrent run's speed as a fraction of the lone run's (the ideal
    with 2 cores shared by 2 runs is 0.5; target >= 0.45).
(b) sweep-style runs per hour: ``gan-init sweep`` of two runs as ``make sweep-2d`` runs them
    (``gan-init pipeline``, scratch, seeds 0 and 1, the same config: training, then samples),
    with the new defaults (on 2 CPUs: both at once, one thread each) against one at a time at 2
    threads with OpenMP's default wait (the old behaviour: ``--parallel 1 --threads 2``,
    ``OMP_WAIT_POLICY=`` empty; >= 2x). Its ceiling: two 1-thread runs at their lone speed
    against one at a time at 2 threads: ``2 x t(one at a time, 2 threads) / t(one at a time, 1
    thread)``; ratio / ceiling is how much of a lone run's speed each keeps side by side.

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


def env(wait: str | None = None) -> dict[str, str]:
    """Each command's environment: its threads and wait policy as the project picks them, or
    ``OMP_WAIT_POLICY=wait`` ("": OpenMP's default, torch's behaviour before the policy)."""
    out = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline", WANDB_SILENT="true")
    for name in (
        "GAN_INIT_THREADS",
        "GAN_INIT_THREADS_GIVEN",
        "OMP_NUM_THREADS",
        "OMP_WAIT_POLICY",
    ):
        out.pop(name, None)
    if wait is not None:
        out["OMP_WAIT_POLICY"] = wait
    return out


def fit_cmd(config: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "gan_init", "fit", "--config", config, "--run_dir", str(run_dir)]


def shrunk(config: str, factor: int, tmp: Path) -> str:
    """A copy of ``config`` with its images per level (noise GAN) or samples per epoch
    (CycleGAN) divided by ``factor``."""
    cfg = yaml.safe_load(Path(config).read_text())
    for cb in cfg["trainer"]["callbacks"]:
        if cb["class_path"].endswith("ProgressiveSchedule"):
            for key in ("train_images", "fade_images"):
                cb["init_args"][key] = [n // factor for n in cb["init_args"][key]]
    data = cfg["data"]["init_args"]
    if "samples_per_epoch" in data and "CycleGAN" in cfg["model"]["class_path"]:
        data["samples_per_epoch"] = max(data["batch_size"], data["samples_per_epoch"] // factor)
    out = tmp / Path(config).name
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(out)


def timed(cmds: list[list[str]], cwd: Path, environ: dict[str, str] | None = None) -> list[float]:
    """Start ``cmds`` at once; each one's wall seconds."""
    start = time.perf_counter()
    environ = environ or env()
    procs = [
        subprocess.Popen(c, cwd=cwd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


# The new defaults; the old behaviour (with OpenMP's default wait, below); one at a time at the
# new defaults' thread count, for the ceiling.
SWEEPS = {
    "new": [],
    "old": ["--parallel", "1", "--threads", "2"],
    "one_thread": ["--parallel", "1", "--threads", "1"],
}


def sweeps(config: str, tmp: Path) -> dict:
    out = {}
    for label, options in SWEEPS.items():
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
        # The old behaviour: one at a time, 2 threads, OpenMP's default wait (spinning first).
        environ = env(wait="" if label == "old" else None)
        (wall,) = timed([[*cmd, "--runs_dir", str(folder / "runs"), *options]], folder, environ)
        state = json.loads((folder / "runs" / "sweeps" / "sweep.json").read_text())
        assert [r["state"] for r in state["runs"]] == ["finished"] * 2, state
        out[label] = {"wall_s": wall, "runs_per_hour": 2 * 3600 / wall, "options": options}
    out["ratio"] = out["new"]["runs_per_hour"] / out["old"]["runs_per_hour"]
    out["ceiling"] = 2 * out["old"]["wall_s"] / out["one_thread"]["wall_s"]
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
    for label, what in (
        ("new", "new defaults"),
        ("old", "one at a time, 2 threads"),
        ("one_thread", "one at a time, 1 thread"),
    ):
        r = b[label]
        print(f"    {what:<26} {r['wall_s']:6.1f} s  {r['runs_per_hour']:6.1f} runs/hour")
    print(f"    ratio {b['ratio']:.2f}x (target >= 2x)")
    print(
        f"    ceiling {b['ceiling']:.2f}x: two at once if each kept its lone speed "
        f"(2 x {b['old']['wall_s']:.1f} s / {b['one_thread']['wall_s']:.1f} s); "
        f"ratio / ceiling {b['ratio'] / b['ceiling']:.2f}"
    )
    print(f"    (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs when it ended)")
    if args.out:
        Path(args.out).write_text(json.dumps({"a": a, "b": b}, indent=2))


if __name__ == "__main__":
    main()
