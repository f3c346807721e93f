"""W&B records of a sweep beyond its runs: the sweep's run table (one row per run: its factors,
status and endpoint values) logged as a W&B table artifact when the sweep ends, so W&B's views
hold the same table the report reads. Offline unless ``WANDB_MODE``/``WANDB_API_KEY`` say
otherwise (``wandb sync`` uploads it later)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any


def _rows(path: Path) -> list[dict[str, Any]]:
    """The table's rows: a CSV with a header, or JSON (a list of objects, or ``{"runs": [...]}``)."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    data = json.loads(path.read_text())
    rows = data.get("runs", []) if isinstance(data, dict) else data
    return [row for row in rows if isinstance(row, dict)]


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def log_run_table(
    path: str | Path,
    *,
    name: str | None = None,
    project: str = "gan-init",
    group: str | None = None,
) -> Path:
    """Log the run table in ``path`` as a W&B table artifact (type ``run_table``, named
    ``<name>-runs``; ``name`` defaults to the file's stem) in a short W&B run of job type
    ``sweep-table`` (group: the sweep's, so it sits beside the sweep's runs). Returns the W&B
    run's folder."""
    import wandb

    path = Path(path)
    rows = _rows(path)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])
    name = name or path.stem
    mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    run = wandb.init(
        project=project, job_type="sweep-table", name=f"{name}-runs", group=group or name,
        dir=str(path.parent), mode=mode, reinit="finish_previous",
    )  # fmt: skip
    try:
        artifact = wandb.Artifact(f"{name}-runs", type="run_table")
        artifact.add(table, "runs")
        run.log({"runs": table})
        run.log_artifact(artifact)
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder
