"""Reading run folders: what the report knows about each run, and about each sweep.

Reads, under ``RUNS_DIR``:

- ``<group>/<run>/summary.json`` of each noise-GAN run (``gan_init.runs.RunSummary``) (one level of grouping, e.g. ``2d/``,
  ``3d/`` or a sweep's name; runs still running or interrupted, and summaries without ``dims``,
  are skipped);
- the run's CSVLogger files over all its attempts (``metrics.csv`` and the ones set aside
  before each resume, ``metrics.before-resume-<N>.csv``; ``gan_init.core.files.csv_attempts``):
  metric curves against ``progress/images_shown``;
- ``sweeps/<sweep>.json``, the state ``gan-init sweep`` writes: its runs, their times and the
  pre-specified endpoints.

New per-run or per-sweep facts enter here, as fields of ``Run`` or readers of the sweep state,
so the analysis never opens a file.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.core.files import csv_attempts, read_json
from gan_init.experiment.stats import EndpointSpec
from gan_init.runs import INTERRUPTED, RUNNING, SWEEPS, RunSummary, run_summaries

TABLE_META = ".table.json"  # a sweep's run table's meta beside its state (not a state)

X_KEY = "progress/images_shown"


CURVE_PREFIXES = ("eval/", "diag/")


@dataclass
class Run:
    """One noise-GAN run: identity, status and metric curves ``{metric: (images_shown, value)}``."""

    dims: int
    strategy: str
    grow: str
    seed: int
    status: str
    path: Path
    config: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    samples: Path | None = None

    @property
    def group(self) -> str:
        return f"{self.strategy} ({self.grow})"


def read_curves(csv_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Metric curves against images shown from a Lightning CSVLogger file (sparse rows)."""
    points: dict[str, list[tuple[float, float]]] = {}
    images_at_step: dict[int, float] = {}
    rows = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
            if row.get(X_KEY) not in (None, "") and row.get("step") not in (None, ""):
                images_at_step[int(float(row["step"]))] = float(row[X_KEY])
    steps = sorted(images_at_step)
    for row in rows:
        x = row.get(X_KEY)
        if x in (None, "") and row.get("step") not in (None, "") and steps:
            step = int(float(row["step"]))
            i = int(np.searchsorted(steps, step, side="right")) - 1
            x = images_at_step[steps[max(i, 0)]]
        if x in (None, ""):
            continue
        for key, value in row.items():
            if key.startswith(CURVE_PREFIXES) and value not in (None, ""):
                v = float(value)
                if math.isfinite(v):
                    points.setdefault(key, []).append((float(x), v))
    curves = {}
    for key, pts in points.items():
        pts.sort()
        xs, ys = zip(*pts)
        curves[key] = (np.asarray(xs), np.asarray(ys))
    return curves


def read_run_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A run's curves over all its attempts (``gan_init.core.files.csv_attempts``). A later attempt's
    points replace an earlier attempt's from where the later one starts (the earlier went past
    the checkpoint the later resumed from)."""
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path in csv_attempts(run_dir):
        for key, (xs, ys) in read_curves(path).items():
            if key in merged:
                old_x, old_y = merged[key]
                keep = old_x < xs[0]
                xs, ys = np.concatenate([old_x[keep], xs]), np.concatenate([old_y[keep], ys])
            merged[key] = (xs, ys)
    return merged


def collect_runs(runs_dir: Path) -> list[Run]:
    """Every run under ``runs_dir`` that has ended (finished, diverged or failed), with its
    curves; a summary without ``dims`` is no noise-GAN run and is skipped."""
    runs = []
    for run_dir, summary in run_summaries(runs_dir):
        if summary.status in (RUNNING, INTERRUPTED) or summary.dims is None:
            continue
        curves = read_run_curves(run_dir)
        final = {k: float(v) for k, v in summary.metrics.items() if _is_number(v)}
        for key, (_, ys) in curves.items():
            final.setdefault(key, float(ys[-1]))
        pngs = sorted(Path(summary.samples).glob("*.png")) if summary.samples else []
        runs.append(
            Run(
                dims=int(summary.dims),
                strategy=summary.arm,
                grow=_grow_in_cell(summary),
                seed=int(summary.seed),
                status=summary.status,
                path=run_dir,
                config=summary.config_name(),
                curves=curves,
                final=final,
                samples=pngs[0] if pngs else None,
            )  # fmt: skip
        )
    return runs


def _grow_in_cell(summary: RunSummary) -> str:
    """The growth mode, with the map's other cell factors when they are not at their defaults
    (training-set size, stress), so runs of different cells are never paired."""
    parts = [str(summary.grow)]
    if summary.train_subjects is not None:
        parts.append(f"{summary.train_subjects} subjects")
    if summary.stress not in (None, 1.0):
        parts.append(f"stress x{summary.stress:g}")
    return ", ".join(parts)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sweep_states(runs_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each sweep's state file under ``RUNS_DIR/sweeps/`` and what it holds, by file name."""
    states = sorted(
        p for p in (runs_dir / SWEEPS).glob("*.json") if not p.name.endswith(TABLE_META)
    )
    return [(path, read_json(path) or {}) for path in states]


def sweep_specs(runs_dir: Path) -> dict[tuple[str, str], EndpointSpec]:
    """Each sweep run's pre-specified endpoints, keyed by its folder (``<parent>/<name>``, so a
    moved runs folder still matches), from the sweep state files ``gan-init sweep`` writes."""
    specs: dict[tuple[str, str], EndpointSpec] = {}
    for state_file, state in sweep_states(runs_dir):
        if not state.get("endpoints"):
            continue
        source = state.get("sweep_file") or state_file.name
        spec = EndpointSpec.from_dict(state["endpoints"], f"{state_file}: endpoints", source)
        for record in state.get("runs", []):
            if record.get("run_dir"):
                run_dir = Path(record["run_dir"])
                specs[(run_dir.parent.name, run_dir.name)] = spec
    return specs
