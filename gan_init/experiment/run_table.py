"""A sweep's run table: one row per run, every factor and endpoint, small enough to commit.

The table is what the answer rests on: ``gan-init report TABLE.csv`` rebuilds every table and
figure of the map from it alone, without ``runs/``. A sweep writes it when it ends (beside its
state, ``<runs>/sweeps/<sweep>.table.csv``); copy it to ``docs/results/`` to commit it.

Two files:

- ``<name>.csv``: the rows (``COLUMNS``, in that order); an empty cell is a value the run does
  not have (``train_subjects`` empty: the unlimited stream; ``failure`` empty: the run never
  ended).
- ``<name>.json``: what the rows mean and where they came from: the pre-specified analysis
  (``endpoints``), the declared seeds (``seeds``: tuning and confirmatory), the failure rules,
  the sweep file, the threads per run and the machine.

Columns. Factors: ``dims``, ``noise_config``, ``data``, ``arm`` (the init strategy, with
``+aug`` when the critic augments), ``init_strategy``, ``augment``, ``grow``,
``train_subjects``, ``stress``, ``seed``. Outcome: ``status`` (finished, diverged, failed),
``failure`` (none, diverged, collapsed, not_converged: ``FailureRule``), ``endpoint`` (the
primary: ``eval/full/swd_mean``), ``final_swd`` (the final full-resolution SWD),
``msssim_fake``, ``msssim_real``, ``memo_fraction``, ``swd_floor``, ``swd_floor_sd``; the
transfer diagnostics at the end (``cka_<part>``, ``weight_dist_<part>``); the CycleGAN the run
started from (``cyclegan_epoch``, ``cyclegan_psnr``, ``cyclegan_ssim``: T2 -> T1 on validation);
``seconds`` and ``threads`` of the run.
"""

from __future__ import annotations

import csv
import io
import math
import platform
from pathlib import Path
from typing import Any

from gan_init.core.files import read_json, write_atomic, write_json
from gan_init.experiment.report.read import read_run_curves
from gan_init.runs import DONE, METRICS_FINAL, RunSummary, read_artifact, run_summaries

ENDPOINT_KEY = "eval/full/swd_mean"
DIAG_PARTS = ("trunk", "decoder", "head")
FACTORS = (
    "dims",
    "noise_config",
    "data",
    "arm",
    "init_strategy",
    "augment",
    "grow",
    "train_subjects",
    "stress",
    "seed",
)
OUTCOMES = (
    "status",
    "failure",
    "endpoint",
    "final_swd",
    "msssim_fake",
    "msssim_real",
    "memo_fraction",
    "swd_floor",
    "swd_floor_sd",
    *(f"cka_{p}" for p in DIAG_PARTS),
    *(f"weight_dist_{p}" for p in DIAG_PARTS),
    "cyclegan_epoch",
    "cyclegan_psnr",
    "cyclegan_ssim",
    "seconds",
    "threads",
)
COLUMNS = FACTORS + OUTCOMES
INTEGER = {"dims", "train_subjects", "seed", "cyclegan_epoch", "threads"}
TEXT = {"noise_config", "data", "arm", "init_strategy", "augment", "grow", "status", "failure"}


def _last_diagnostics(run_dir: Path) -> dict[str, float]:
    curves = read_run_curves(run_dir)
    out: dict[str, float] = {}
    for part in DIAG_PARTS:
        for kind, key in (("cka", f"diag/cka/{part}"), ("weight_dist", f"diag/weight_dist/{part}")):
            if key in curves and len(curves[key][1]):
                out[f"{kind}_{part}"] = float(curves[key][1][-1])
    return out


def _cyclegan(summary: RunSummary) -> dict[str, Any]:
    record = summary.cyclegan or {}
    if not record.get("checkpoint"):
        return {}
    val = record.get("val") or {}
    done = read_json(Path(record["checkpoint"]).parent.parent / DONE) or {}
    return {
        "cyclegan_epoch": (done.get("selected") or {}).get("epoch"),
        "cyclegan_psnr": val.get("val/psnr_t2_to_t1"),
        "cyclegan_ssim": val.get("val/ssim_t2_to_t1"),
    }


def row_of(run_dir: Path, summary: RunSummary) -> dict[str, Any]:
    """The table row of one noise-GAN run folder."""
    metrics = summary.metrics
    final = read_artifact(run_dir, METRICS_FINAL) or {}
    data = summary.extra.get("data") or {}
    row: dict[str, Any] = {
        "dims": summary.dims,
        "noise_config": summary.config_name(),
        "data": data.get("name", "icbm"),
        "arm": summary.arm,
        "init_strategy": summary.init_strategy,
        "augment": summary.augment,
        "grow": summary.grow,
        "train_subjects": summary.train_subjects,
        "stress": summary.stress if summary.stress is not None else 1.0,
        "seed": summary.seed,
        "status": summary.status,
        "failure": final.get("failure"),
        "endpoint": metrics.get(ENDPOINT_KEY),
        "final_swd": metrics.get("eval/full/swd"),
        "msssim_fake": metrics.get("eval/full/msssim_fake"),
        "msssim_real": metrics.get("eval/full/msssim_real"),
        "memo_fraction": metrics.get("eval/full/memo_fraction"),
        "swd_floor": metrics.get("eval/swd_floor"),
        "swd_floor_sd": metrics.get("eval/swd_floor_sd"),
        "seconds": summary.seconds,
        "threads": summary.threads,
    }
    if summary.status == "diverged" and not row["failure"]:
        row["failure"] = "diverged"
    row |= _last_diagnostics(run_dir)
    row |= _cyclegan(summary)
    return {c: row.get(c) for c in COLUMNS}


def collect(runs_dir: str | Path, sweep: str | None = None) -> list[dict[str, Any]]:
    """Rows of the noise-GAN runs under ``runs_dir`` that ended (finished, diverged or failed),
    of one sweep when ``sweep`` is given (its runs record ``sweep_run = <sweep>/<run>``)."""
    rows = []
    for run_dir, summary in run_summaries(runs_dir):
        if summary.status in ("running", "interrupted") or summary.dims is None:
            continue
        if sweep is not None and not (summary.sweep_run or "").startswith(f"{sweep}/"):
            continue
        rows.append(row_of(run_dir, summary))
    return sorted(rows, key=_order)


def _order(row: dict[str, Any]) -> tuple:
    return tuple(("" if row[k] is None else str(row[k])) for k in FACTORS)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_table(rows: list[dict[str, Any]], path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<path>.csv`` (the rows) and ``<path>.json`` (``meta`` plus the machine); returns
    the CSV path. ``path`` may end in ``.csv`` or name the stem."""
    csv_path = Path(path).with_suffix(".csv")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes a cell with a comma (a policy)
    writer.writerow(COLUMNS)
    writer.writerows([_cell(row.get(c)) for c in COLUMNS] for row in rows)
    write_atomic(csv_path, text.getvalue())
    machine = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        import torch

        machine["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    write_json(csv_path.with_suffix(".json"), {**meta, "machine": machine, "runs": len(rows)})
    return csv_path


def _parse(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in TEXT:
        return text
    if column in INTEGER:
        return int(float(text))
    return float(text)


def read_table(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of ``<path>.csv`` (typed) and the meta of ``<path>.json`` (empty if absent)."""
    csv_path = Path(path).with_suffix(".csv")
    if not csv_path.is_file():
        raise FileNotFoundError(f"run table {csv_path} does not exist")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [
            c for c in ("arm", "grow", "seed", "endpoint") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise ValueError(
                f"{csv_path}: not a run table (no column {', '.join(missing)}); write one with "
                "gan-init sweep (at its end) or gan-init report RUNS_DIR --table OUT.csv"
            )
        rows = [{c: _parse(c, r.get(c, "") or "") for c in COLUMNS} for r in reader]
    meta = read_json(csv_path.with_suffix(".json")) or {}
    return rows, meta
