"""Where one CPU sweep run spends its time: ``gan-init fit`` of a config (default the 2D sweep's,
``experiments/configs/noise_2d_sweep.yaml``) in a temporary folder, end to end, split into
process start, imports, config, building the objects, each phase of ``trainer.fit`` (Lightning's
SimpleProfiler: training steps, data loading, evaluation, diagnostics, grids, checkpoints,
progress/logging) and what comes after it (W&B's offline files, interpreter exit).

    python benchmarks/run_breakdown.py [--config FILE] [--threads 1] [--out runs/bench/x.json]

Each line is seconds and the share of the wall time; measured in one run (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lightning profiler actions by what they are (first match wins; ``[Callback]X.hook`` by X).
PHASES = [
    ("training steps (G and D forward, backward, optimizer)", ("run_training_batch",)),
    ("data loading (waiting for the loader)", ("train_dataloader_next",)),
    ("evaluation (SWD, MS-SSIM, memorization)", ("EvaluationCallback",)),
    ("transfer diagnostics (CKA, weight distances)", ("TransferDiagnostics",)),
    ("image grids", ("NoiseSampleGrid",)),
    ("checkpoints", ("ModelCheckpoint", "PreemptionCheckpoint", "save_checkpoint")),
    ("EMA of the generator", ("[Callback]EMA.",)),
    ("progress, stability, schedule", ("TrainingProgress", "StabilityCallback", "Progressive")),
    ("data setup (templates, loaders)", ("DataModule",)),
]
# Wrappers around the actions above: counted by their parts, never themselves.
WRAPPERS = ("run_training_epoch",)


def child(config: str, result: str) -> None:
    """Run the fit in this process with timers around its stages; write them to ``result``."""
    marks = {"child_start": time.time()}
    from gan_init import cli  # noqa: F401  (the entry point's own imports)
    from gan_init.cli import lightning as gl

    marks["imports"] = time.time()
    import pytorch_lightning as pl
    from pytorch_lightning.profilers import SimpleProfiler

    durations: dict[str, list[float]] = {}

    def keep(self, *a, **k):
        durations.update({k2: list(v) for k2, v in self.recorded_durations.items()})
        return SimpleProfiler.__dict__["_orig_summary"](self, *a, **k)

    SimpleProfiler._orig_summary = SimpleProfiler.summary
    SimpleProfiler.summary = keep

    def timed(cls, name, mark):
        original = getattr(cls, name)

        def wrapper(self, *a, **k):
            start = time.time()
            try:
                return original(self, *a, **k)
            finally:
                marks[mark] = marks.get(mark, 0.0) + time.time() - start

        setattr(cls, name, wrapper)

    timed(gl.GanInitCLI, "parse_arguments", "config")
    timed(gl.GanInitCLI, "instantiate_classes", "build")
    timed(pl.Trainer, "fit", "fit")
    code = cli.main(
        ["fit", "--config", config, "--trainer.profiler=pytorch_lightning.profilers.SimpleProfiler"]
    )
    marks["child_end"] = time.time()
    Path(result).write_text(json.dumps({"code": code, "marks": marks, "durations": durations}))


def phases(durations: dict[str, list[float]]) -> dict[str, float]:
    out = {name: 0.0 for name, _ in PHASES}
    out["other hooks"] = 0.0
    # Hooks called inside a training batch (on_before_backward, ...) are in run_training_batch.
    inside = ("on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_before_zero_grad", "training_step", "optimizer_step", "backward")  # fmt: skip
    for action, values in durations.items():
        if action in WRAPPERS or action.startswith(("[Strategy]", "[LightningModule]")):
            continue
        if action != "run_training_batch" and action.endswith(inside):
            continue
        for name, keys in PHASES:
            if any(k in action for k in keys):
                out[name] += sum(values)
                break
        else:
            out["other hooks"] += sum(values)
    return out


def measure(config: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline", WANDB_SILENT="true")
        env.update(GAN_INIT_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        code = f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import run_breakdown as r; r.child({config!r}, {str(result)!r})"
        start = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        end = time.time()
        if proc.returncode != 0 or not result.is_file():
            sys.exit(f"the run failed:\n{proc.stdout[-3000:]}")
        got = json.loads(result.read_text())
    m = got["marks"]
    fit_parts = phases(got["durations"])
    in_fit = sum(fit_parts.values())
    rows = {
        "process start (interpreter)": m["child_start"] - start,
        "imports (torch, Lightning, gan_init)": m["imports"] - m["child_start"],
        "config (LightningCLI parse)": m["config"],
        "building model, data, callbacks, loggers": m["build"],
        **fit_parts,
        "fit: the rest (loop, logging, W&B init)": m["fit"] - in_fit,
        "after fit (summary, W&B files)": m["child_end"] - m["child_start"] - m["fit"]
        - m["config"] - m["build"] - (m["imports"] - m["child_start"]),
        "interpreter exit": end - m["child_end"],
    }  # fmt: skip
    return {"wall": end - start, "rows": rows, "config": config, "threads": threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/configs/noise_2d_sweep.yaml")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    config = str((REPO / args.config) if not Path(args.config).is_absolute() else args.config)
    got = measure(config, args.threads)
    wall = got["wall"]
    print(f"gan-init fit {args.config}, {args.threads} thread(s): {wall:.1f} s wall")
    for name, seconds in got["rows"].items():
        print(f"  {name:<55} {seconds:7.2f} s  {100 * seconds / wall:5.1f}%")
    load = os.getloadavg()[0]
    print(f"  (load average {load:.2f} on {os.cpu_count()} CPUs when it ended)")
    if args.out:
        Path(args.out).write_text(json.dumps({**got, "load": load}, indent=2))


if __name__ == "__main__":
    main()
