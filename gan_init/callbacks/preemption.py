"""Save ``last.ckpt`` when the job is told to stop (SIGTERM, or SLURM's SIGUSR1), so a requeued
job resumes where it stopped instead of at the last periodic checkpoint; and when training ends,
so ``last.ckpt`` holds the weights the final metrics and samples come from (Lightning writes it
only with a periodic save, so a run stopped by its image schedule kept the one of up to 499
steps before).

Lightning already does the signal half: its ``_SignalConnector`` turns SIGTERM into a
``SIGTERMException`` raised at the next batch boundary (on every DDP rank at once), and under
SLURM (``SLURMEnvironment(auto_requeue=True)``) its SIGUSR1 handler writes ``hpc_ckpt_<k>.ckpt``
and runs ``scontrol requeue``. What it does not do is write the checkpoint the run resumes from:
this callback's ``on_exception`` saves each ``ModelCheckpoint``'s ``last.ckpt`` on that exception,
and SIGUSR1 (after Lightning's own SLURM handler, when there is one) is turned into the same
SIGTERM path. ``gan-init fit`` adds this callback to every fit and exits with status 143
(128 + SIGTERM) after such a stop, so a caller never takes it for a finished run.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.exceptions import SIGTERMException

# The exit status of a fit stopped by a signal after saving (128 + SIGTERM, the shell's way).
STOPPED_EXIT_CODE = 128 + int(signal.SIGTERM)


def last_checkpoint_path(callback: ModelCheckpoint) -> Path | None:
    """Where ``callback`` writes its last checkpoint (None without ``save_last`` or a folder)."""
    if not callback.save_last or not callback.dirpath:
        return None
    return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"


class PreemptionCheckpoint(Callback):
    """On SIGTERM or SIGUSR1: finish the current batch, save ``last.ckpt``, stop.

    Args:
        stop_signals: besides SIGTERM (handled by Lightning), the signals that stop training the
            same way. The default, ``("SIGUSR1",)``, is the signal SLURM sends before a time
            limit with ``#SBATCH --signal=USR1@<seconds>``.
    """

    def __init__(self, stop_signals: tuple[str, ...] | list[str] = ("SIGUSR1",)) -> None:
        self.stop_signals = tuple(stop_signals)
        for name in self.stop_signals:
            if not isinstance(getattr(signal, name, None), signal.Signals):
                raise ValueError(f"stop_signals: {name!r} is not a signal name (e.g. 'SIGUSR1')")
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After Lightning registered its own handlers (Trainer._run), so under SLURM its requeue
        # handler runs first and this one chains after it.
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.stop_signals:
            signum = getattr(signal, name)
            previous = signal.getsignal(signum)
            self._previous[signum] = previous

            def handler(num: int, frame: Any, previous: Any = previous) -> None:
                if callable(previous):
                    previous(num, frame)
                rank_zero_info(f"{signal.Signals(num).name}: saving last.ckpt after this batch")
                os.kill(os.getpid(), signal.SIGTERM)  # Lightning's SIGTERM path stops the loop

            signal.signal(signum, handler)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for signum, previous in self._previous.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Not after a divergence: the stability callback has turned save_last off, so the last
        # good periodic checkpoint stays. Not in a fast_dev_run (Lightning saves nothing there).
        if trainer.fast_dev_run:
            return
        for path, callback in self._last_paths(trainer).items():
            callback.last_model_path = str(path)
            _save_training_state(trainer, path)

    @staticmethod
    def _last_paths(trainer: Trainer) -> dict[Path, ModelCheckpoint]:
        return {
            path: cb for cb in trainer.checkpoint_callbacks if (path := last_checkpoint_path(cb))
        }

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        targets = self._last_paths(trainer)
        if not targets:
            rank_zero_warn(
                "stopped by a signal, but no ModelCheckpoint with save_last and a dirpath: "
                "nothing saved (add one to trainer.callbacks)"
            )
            return
        for path, callback in targets.items():
            # Recorded in the checkpoint (the callback's state): the resumed run then writes
            # this same last.ckpt, not a last-v1.ckpt beside it.
            callback.last_model_path = str(path)
            _save_training_state(trainer, path)
            rank_zero_info(
                f"stopped by a signal at step {trainer.global_step}: saved {path}; resume with "
                f"--ckpt_path {path}"
            )


def _save_training_state(trainer: Trainer, path: Path) -> None:
    """Write the full training state (weights, optimizers, loops, callbacks) to ``path`` for an
    exact resume; every rank calls it (a collective in DDP).

    ``weights_only=False`` is Lightning's *save* option (the whole state, not the weights alone),
    said so that Lightning does not log "`weights_only` was not set" at every fit end. It is not
    ``torch.load``'s flag: the file holds tensors and plain types only, and every load in the
    project reads it with ``torch.load(weights_only=True)`` (``--ckpt_path`` through
    ``gan_init.cli.lightning``; ``tests/test_quiet_fit.py`` and ``tests/test_preemption.py`` load
    these files that way)."""
    trainer.save_checkpoint(path, weights_only=False)
