"""Training progress a person can read, on a terminal and in a log file.

With a ``ProgressiveSchedule`` (which sets its resolved schedule on the model,
``image_schedule``) the run is counted in images: ``images shown / images planned``, level
(resolution), fade-in alpha, elapsed time and time left. Otherwise (the CycleGAN) in epochs and
batches. On a terminal this is one live bar (tqdm); when stdout is not a terminal
(nohup, SLURM, the pipeline's ``log.txt``) it is a plain line every ``every_seconds`` seconds
and every ``every_percent`` percent, flushed, so a log file shows where the run is.

A ``ProgressBar`` subclass: Lightning uses it in place of its own bar (whose "Epoch 60/-2"
means nothing for a run that ends on an image count).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar

# From this resolution on, a level's pace scaled by pixel count predicts the next levels' (below
# it an image costs mostly per-step overhead: from 4 px the scaling said 1h23m for a 6 min run).
SCALED_FROM = 16


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class TrainingProgress(ProgressBar):
    """Progress in images (progressive schedule) or epochs (otherwise).

    Args:
        every_seconds: off a terminal, print a line at least this often (seconds).
        every_percent: off a terminal, also print a line at each multiple of this percentage.
        terminal: force the live bar (True) or plain lines (False); None: ``stdout.isatty()``.
    """

    def __init__(
        self, every_seconds: float = 30.0, every_percent: float = 10.0, terminal: bool | None = None
    ) -> None:
        super().__init__()
        self.every_seconds = float(every_seconds)
        self.every_percent = float(every_percent)
        self.terminal = terminal
        self._enabled = True
        self._bar: Any = None
        self._start = 0.0
        self._start_done = 0.0
        self._last_print = 0.0
        self._last_bucket = -1
        self._schedule: Any = None
        # (level, time, images shown) when the current level was first seen
        self._level_mark: tuple[int, float, float] | None = None

    # ---- ProgressBar interface ---------------------------------------------------------------

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    # ---- what to show ------------------------------------------------------------------------

    def _done_total(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> tuple[float, float | None]:
        """Work done and planned: images (schedule) or training batches (otherwise)."""
        if self._schedule is not None:
            return float(pl_module.images_shown), float(self._schedule.total_images)
        per_epoch = self.total_train_batches
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if not isinstance(per_epoch, (int, float)) or per_epoch in (0, float("inf")):
            return float(trainer.global_step), None
        done = trainer.current_epoch * per_epoch + batches
        totals = []
        if trainer.max_epochs not in (None, -1):
            totals.append(trainer.max_epochs * per_epoch)
        if trainer.max_steps not in (None, -1):
            totals.append(trainer.max_steps)
        return float(done), (float(min(totals)) if totals else None)

    def describe(self, trainer: Trainer, pl_module: LightningModule) -> str:
        """One line: where the run is, and how long it has left."""
        done, total = self._done_total(trainer, pl_module)
        if self._schedule is not None:
            n_levels = self._schedule.n_levels
            what = (
                f"{int(done):,}/{int(total):,} images ({100 * done / max(total, 1):.1f}%) | "
                f"level {pl_module.level + 1}/{n_levels} ({pl_module.resolution} px)"
            )
            if pl_module.alpha < 1:
                what += f", fade-in alpha {pl_module.alpha:.2f}"
        else:
            epochs = "" if trainer.max_epochs in (None, -1) else f"/{trainer.max_epochs}"
            what = f"epoch {trainer.current_epoch + 1}{epochs}"
            if total:
                what += f" | {100 * done / total:.1f}% of training"
        elapsed = time.monotonic() - self._start
        when = f"{_duration(elapsed)} elapsed"
        left = self._seconds_left(done, total, elapsed, pl_module)
        if left is not None:
            low, high = left
            span = _duration(low) if high <= 1.2 * low else f"{_duration(low)}-{_duration(high)}"
            when += f", ~{span} left"
        losses = " ".join(
            f"{k.split('/')[-1]} {float(v):.3g}"
            for k, v in self.get_metrics(trainer, pl_module).items()
            if k.endswith(("loss_d", "loss_g"))
        )
        return f"{what} | {when}" + (f" | {losses}" if losses else "")

    def _seconds_left(
        self, done: float, total: float | None, elapsed: float, pl_module: LightningModule
    ) -> tuple[float, float] | None:
        """Time left, as (low, high). Image-counted runs: once the current level has shown enough
        images, at least its own pace for every image left (a later, larger level never costs
        less per image) and at most that pace scaled by each later level's pixel (voxel) count
        (measured here: 3D 16^3 -> 32^3 cost ~10x per image, 2D 16 -> 64 px ~2.6x, so the truth
        lies between). The last level gives one value. Before that, and for epoch-counted runs,
        the run's mean pace (which in 3D said ~4 min left when 12 were)."""
        rate_done = done - self._start_done
        if not total or rate_done <= 0 or done >= total:
            return None
        mean_pace = elapsed * (total - done) / rate_done
        if self._schedule is None:
            return mean_pace, mean_pace
        now, level = time.monotonic(), pl_module.level
        if self._level_mark is None or self._level_mark[0] != level:
            self._level_mark = (level, now, done)
        _, since, at = self._level_mark
        bounds = self._schedule.bounds  # start of each level, in images; end of the run last
        later = range(level + 1, self._schedule.n_levels)
        too_few = done - at < max(64.0, 0.05 * (bounds[level + 1] - bounds[level]))
        if too_few or (later and pl_module.resolution < SCALED_FROM):
            return mean_pace, mean_pace  # tiny levels are overhead, not pixels: no scaling
        pace = (now - since) / (done - at)  # seconds per image at this level
        spatial_dims = int(getattr(pl_module, "spatial_dims", 2))
        low = (total - done) * pace
        high = (bounds[level + 1] - done) * pace
        for k in later:
            high += (bounds[k + 1] - bounds[k]) * pace * 2 ** (spatial_dims * (k - level))
        return low, high

    # ---- hooks -------------------------------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The noise GAN's resolved schedule (set by ProgressiveSchedule); the CycleGAN has none.
        self._schedule = getattr(pl_module, "image_schedule", None)
        self._start = self._last_print = time.monotonic()
        self._start_done, total = self._done_total(trainer, pl_module)
        terminal = sys.stdout.isatty() if self.terminal is None else self.terminal
        if not (self._enabled and trainer.is_global_zero):
            return
        if terminal:
            from tqdm.auto import tqdm

            unit = "img" if self._schedule is not None else "batch"
            self._bar = tqdm(
                total=int(total) if total else None, initial=int(self._start_done), unit=unit,
                unit_scale=True, dynamic_ncols=True, file=sys.stdout, desc="train",
            )  # fmt: skip
        else:
            self._bar = None
            self._print(f"training started | {self.describe(trainer, pl_module)}")

    def _print(self, line: str) -> None:
        print(f"[progress] {line}", file=sys.stdout, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        done, total = self._done_total(trainer, pl_module)
        if self._bar is not None:
            self._bar.n = int(min(done, total) if total else done)
            if self._schedule is not None:
                self._bar.set_description(
                    f"level {pl_module.level + 1}/{self._schedule.n_levels} "
                    f"{pl_module.resolution}px a={pl_module.alpha:.2f}",
                    refresh=False,
                )
            else:
                self._bar.set_description(f"epoch {trainer.current_epoch + 1}", refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        bucket = int(100 * done / total // self.every_percent) if total else -1
        if now - self._last_print >= self.every_seconds or bucket > self._last_bucket:
            self._last_print, self._last_bucket = now, max(bucket, self._last_bucket)
            self._print(self.describe(trainer, pl_module))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elapsed = _duration(time.monotonic() - self._start)
        done, total = self._done_total(trainer, pl_module)
        what = f"{int(done):,} images" if self._schedule is not None else f"{int(done):,} batches"
        self._print(f"training ended after {elapsed}: {what}")

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (
            self._enabled
            and trainer.is_global_zero
            and self._bar is None
            and not (trainer.sanity_checking)
        ):
            self._print(f"validating (epoch {trainer.current_epoch + 1})")
