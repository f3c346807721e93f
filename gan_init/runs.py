"""The run folder: what a run writes where, and its summary, as one contract.

Every stage runs in its own folder (``gan_init.experiment.pipeline`` names them)::

    <runs>/cyclegan/2d-<config hash>-seed0/   stage 1 (CycleGAN), shared by the runs of a seed
        config.yaml  log.txt  checkpoints/last.ckpt  csv/metrics.csv  wandb/  done.json
    <runs>/<noise config>/<run>/              stage 2 (noise GAN), one folder per run
        config.yaml  log.txt  checkpoints/last.ckpt  csv/metrics.csv  wandb/  data.json
        transfer_summary.json  metrics_final.json  divergence.json  samples/
        summary.json  summary.md
    <runs>/sweeps/<sweep>.json                a sweep's state (gan_init.experiment.sweep)
    <runs>/report/report.md                   gan-init report

Who writes what: ``gan-init fit`` (``gan_init.cli.run_folder``) points its loggers and
checkpoints here; the callbacks write ``transfer_summary.json`` (WeightTransfer),
``metrics_final.json`` (evaluation), ``divergence.json`` (stability) into the logger's folder;
the data module writes ``data.json``; the pipeline writes ``config.yaml``, ``done.json`` and the
run's ``summary.json`` (``RunSummary``), which report, compare and sweep read. Results pass
between processes through these files only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_init.core.files import read_json, write_json

CONFIG = "config.yaml"
LOG = "log.txt"
CHECKPOINTS = "checkpoints"
LAST_CKPT = "last.ckpt"
CSV_DIR = "csv"  # the CSVLogger's folder: csv/metrics.csv (no version subfolder)
METRICS_CSV = "metrics.csv"
DONE = "done.json"  # stage 1 finished: the checkpoint stage 2 starts from, and why
DATA = "data.json"  # what the data module trained on
TRANSFER_SUMMARY = "transfer_summary.json"  # what WeightTransfer copied and froze
METRICS_FINAL = "metrics_final.json"  # the evaluation at the end of fitting
DIVERGENCE = "divergence.json"  # written only when the stability watch stopped the run
SAMPLES = "samples"
SUMMARY = "summary.json"
SUMMARY_MD = "summary.md"
WANDB = "wandb"
SWEEPS = "sweeps"

# A run's summary status: where it is, or how it ended.
RUNNING, INTERRUPTED = "running", "interrupted"
FINISHED, DIVERGED, FAILED = "finished", "diverged", "failed"
ENDED = (FINISHED, DIVERGED)  # a run that needs no more training


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt`` (it may not exist yet)."""
    return Path(run_dir) / CHECKPOINTS / LAST_CKPT


def find_artifact(run_dir: str | Path, name: str) -> Path | None:
    """The newest file called ``name`` anywhere under ``run_dir`` (callbacks write into the
    logger's folder, which a config may put below the run folder), or None."""
    hits = sorted(Path(run_dir).rglob(name), key=lambda p: p.stat().st_mtime)
    return hits[-1] if hits else None


def read_artifact(run_dir: str | Path, name: str) -> dict[str, Any] | None:
    """The JSON artifact ``name`` of a run (``find_artifact``), or None when there is none."""
    found = find_artifact(run_dir, name)
    return read_json(found) if found else None


@dataclass
class RunSummary:
    """``summary.json`` of a noise-GAN run: who it is, how it ended, where its outputs are.

    ``from_dict`` takes any older summary: a missing key is its default, and keys this class does
    not name are kept in ``extra`` and written back, so a newer writer's keys survive an older
    reader."""

    status: str = FAILED
    run_dir: str | None = None
    # identity (gan_init.experiment.pipeline.PipelineOptions)
    dims: int | None = None
    init_strategy: str | None = None
    grow: str | None = None
    seed: int | None = None
    scale: str | None = None
    noise_config: str | None = None
    train_subjects: int | None = None
    stress: float | None = None
    augment: str | None = None
    source: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    sweep_run: str | None = None  # "<sweep>/<run name>" when `gan-init sweep` started it
    # outcome
    exit_code: int | None = None
    signal: int | None = None
    seconds: float | None = None
    threads: int | None = None
    failure: str | None = None
    samples: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    divergence: dict[str, Any] | None = None
    checkpoint: str | None = None
    checkpoint_global_step: int | None = None
    metrics_global_step: int | None = None
    metrics_csv: str | None = None
    cyclegan: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names and v is not None}
        known["metrics"] = known.get("metrics") or {}
        known["options"] = known.get("options") or {}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        extra = data.pop("extra")
        return {**data, **extra}

    @classmethod
    def read(cls, run_dir: str | Path) -> RunSummary | None:
        """The summary in ``run_dir``, or None when it has none (or an empty one)."""
        data = read_json(Path(run_dir) / SUMMARY)
        return cls.from_dict(data) if data else None

    def write(self, run_dir: str | Path | None = None) -> Path:
        """Write ``summary.json`` into ``run_dir`` (default: its own ``run_dir``), whole."""
        return write_json(Path(run_dir or self.run_dir) / SUMMARY, self.to_dict())

    @property
    def arm(self) -> str:
        """The sweep arm the run belongs to: its init strategy, ``+aug`` when the critic augments
        (``gan-init pipeline --arm``)."""
        return f"{self.init_strategy}+aug" if self.augment else str(self.init_strategy)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def config_name(self) -> str:
        """The noise config the run used (runs of different configs are never pooled): recorded
        by name, else the stem of the config file in its options, else (summaries older than
        both) the shipped config of its dims and scale."""
        given = self.noise_config or Path(self.options.get("noise_config") or "").stem
        gpu = "_gpu" if self.scale == "gpu" else ""
        return given or f"noise_{self.dims}d{gpu}"


def run_summaries(runs_dir: str | Path) -> list[tuple[Path, RunSummary]]:
    """Every run folder ``<runs_dir>/<group>/<run>/`` with a summary, and its summary, in path
    order (the folder where it is now: ``run_dir`` in the summary is where it ran)."""
    found = []
    for path in sorted(Path(runs_dir).glob(f"*/*/{SUMMARY}")):
        summary = RunSummary.read(path.parent)
        if summary is not None:
            found.append((path.parent, summary))
    return found


def sweep_run_summary(runs_dir: str | Path, sweep_run: str) -> RunSummary | None:
    """The summary of the run ``gan-init sweep`` started as ``sweep_run``, or None when no run
    folder under ``runs_dir`` records it (the command wrote none, or is no pipeline)."""
    found = [s for _, s in run_summaries(runs_dir) if s.sweep_run == sweep_run]
    return found[-1] if found else None


# `gan-init sweep` names each run it starts in this variable ("<sweep>/<run name>"); the pipeline
# records it in the run's summary, where the sweep then finds the run's result.
SWEEP_RUN_ENV = "GAN_INIT_SWEEP_RUN"
