"""``gan-init fit`` in its run folder: where a run writes (the policy) and how a fit runs there
(the lifecycle). The names of what it writes are ``gan_init.runs``.

- Policy: everything a run writes (loggers, checkpoints) goes into one folder, ``--run_dir`` or
  ``trainer.default_root_dir``; a fresh run in a folder holding another run's checkpoints is
  refused unless ``--ckpt_path`` resumes it or ``--overwrite true`` sets them aside.
- Lifecycle: the fit holds the lock ``.<checkpoint folder>.lock`` beside each ``ModelCheckpoint``
  folder, so two trainers never write the same ``last.ckpt``; on a resume each CSV logger's
  ``metrics.csv`` is set aside first (Lightning's CSVLogger would delete it); a fit stopped by
  SIGTERM/SIGUSR1 (after saving ``last.ckpt``) exits with status 143, never 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from gan_init.callbacks.preemption import STOPPED_EXIT_CODE
from gan_init.core.errors import UsageError
from gan_init.core.files import keep_csv_before_resume
from gan_init.core.processes import run_lock
from gan_init.runs import (
    CHECKPOINTS,
    CSV_DIR,
    LAST_CKPT,
    METRICS_CSV,
    METRICS_FINAL,
    SAMPLES,
    WANDB,
    last_checkpoint,
)


def _point_loggers_and_checkpoints(trainer: Any, run_dir: Path) -> None:
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if not hasattr(logger, "class_path"):
            continue
        kind = str(logger.class_path).rsplit(".", 1)[-1]
        args = logger.init_args
        if kind == "CSVLogger":
            args.save_dir, args.name, args.version = str(run_dir), CSV_DIR, ""
        elif kind in ("WandbLogger", "TensorBoardLogger") or "save_dir" in args:
            args.save_dir = str(run_dir)
    for callback in trainer.get("callbacks") or []:
        if str(getattr(callback, "class_path", "")).endswith("ModelCheckpoint"):
            callback.init_args.dirpath = str(run_dir / CHECKPOINTS)


def place_run(config: Any) -> Path | None:
    """Send everything the run writes (loggers, checkpoints) into one folder, the run's: the
    ``--run_dir`` option or ``trainer.default_root_dir``; refuse a fresh run in a folder that
    holds another run's checkpoints. Returns the folder (None when the config names none)."""
    trainer = config.trainer
    if config.get("run_dir"):
        trainer.default_root_dir = str(config.run_dir)
    if not trainer.get("default_root_dir"):
        return None
    run_dir = Path(trainer.default_root_dir)
    _point_loggers_and_checkpoints(trainer, run_dir)
    previous = sorted((run_dir / CHECKPOINTS).glob("*.ckpt"))
    if previous and not config.get("ckpt_path"):
        if not config.get("overwrite"):
            raise UsageError(
                f"--run_dir {run_dir}: holds the checkpoints of another run "
                f"({previous[-1].name}); resume it with --ckpt_path "
                f"{last_checkpoint(run_dir)}, start elsewhere with --run_dir "
                "NEW_FOLDER, or set them aside with --overwrite true"
            )
        aside = run_dir / f"{CHECKPOINTS}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        (run_dir / CHECKPOINTS).rename(aside)
        print(f"gan-init fit: the earlier checkpoints of {run_dir} are now in {aside}")
    print(f"gan-init fit: run folder {run_dir}", flush=True)
    return run_dir


def fit_in_run_folder(trainer: Any, fit: Callable[[], None], *, resume: bool) -> None:
    """Call ``fit`` holding the lock of each checkpoint folder; on a resume, set each CSV
    logger's ``metrics.csv`` aside first so no logged value is lost. A stop by SIGTERM/SIGUSR1
    is exit status 143."""
    with ExitStack() as locks:
        for folder in checkpoint_folders(trainer):
            locks.enter_context(
                run_lock(folder.parent, "gan-init fit", wait=False, name=f".{folder.name}.lock")
            )
        if resume:
            for logger in trainer.loggers:
                if isinstance(logger, CSVLogger):
                    keep_csv_before_resume(logger.log_dir)
        try:
            fit()
        except SIGTERMException:
            raise SystemExit(STOPPED_EXIT_CODE) from None


def checkpoint_folders(trainer: Any) -> list[Path]:
    """The folders ModelCheckpoints were told to write into (``dirpath``); a folder Lightning
    picks itself is under a fresh logger version, never shared."""
    folders = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if cb.dirpath]
    return list(dict.fromkeys(f.resolve() for f in folders))


def where_things_are(trainer: Any, run_dir: Path | None) -> str:
    """The last lines of a training command: where its checkpoint, metrics, samples and W&B
    offline run are, and how to sync W&B later."""
    folder = Path(run_dir or trainer.default_root_dir)
    lines = ["", f"run folder:  {folder}"]
    for cb in trainer.checkpoint_callbacks:
        last = Path(cb.dirpath or folder / CHECKPOINTS) / LAST_CKPT
        if last.is_file():
            lines.append(f"checkpoint:  {last}  (resume: --ckpt_path {last})")
            if getattr(trainer.lightning_module, "generator_ema", None) is not None:
                lines.append(
                    f"samples:     gan-init sample --checkpoint {last} --out {folder / SAMPLES}"
                )
            break
    for name in (f"{CSV_DIR}/{METRICS_CSV}", METRICS_FINAL):
        if (folder / name).is_file():
            lines.append(f"metrics:     {folder / name}")
    offline = sorted((folder / WANDB).glob("offline-run-*"))
    if offline:
        lines.append(f"W&B offline: {offline[-1]}  (upload later: wandb sync {offline[-1]})")
    return "\n".join(lines)
