"""Sample grids of the noise GAN while it trains, and W&B curves against images shown.

Every ``every_n_images`` images, at each level change and at the end of training, the generator
(its EMA when an ``EMA`` callback runs) draws images from the same fixed latents; they are shown
beside real training images at the current resolution (as the critic sees them, faded in), with a
caption naming level, resolution, fade-in alpha and images shown. The picture
(``gan_init.core.visualize``: upright, enlarged; 3D: the three middle slices) is saved under the run's
log dir (``<log_dir>/images/samples_<images>.png``) and, for every logger with ``log_image``
(``WandbLogger``), logged as ``key``.

With a ``WandbLogger``, ``progress/images_shown`` (logged by ``ProgressiveGAN``) becomes the x-axis
of every W&B curve (``define_metric``), so runs with other batch sizes line up.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from gan_init.core.visualize import image_grid, save_png, shape_text, side_by_side, titled
from gan_init.models.progressive import real_at

IMAGES_AXIS = "progress/images_shown"
# <log dir>/images/<GRID_NAME>: one grid per moment, named by images shown (sorts in time order).
GRID_NAME = "samples_{:09d}.png"


def fixed_latent_grids(log_dir: str | Path) -> list[Path]:
    """The grids a run's ``NoiseSampleGrid`` wrote, oldest first."""
    return sorted((Path(log_dir) / "images").glob(GRID_NAME.replace("{:09d}", "*")))


def _wandb_loggers(trainer: pl.Trainer) -> list:
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


class NoiseSampleGrid(pl.Callback):
    """Log generated samples (fixed latents) beside real images while the noise GAN trains.

    Args:
        every_n_images: log whenever the images shown cross a multiple of this (0: only at
            level changes and at the end).
        n_samples: generated images per grid (and as many real images beside them).
        seed: seed of the fixed latents.
        key: the logged image's name.
        images_axis: with a ``WandbLogger``, plot every W&B metric against
            ``progress/images_shown``.
    """

    def __init__(
        self,
        every_n_images: int = 5000,
        n_samples: int = 16,
        seed: int = 0,
        key: str = "samples",
        images_axis: bool = True,
    ) -> None:
        super().__init__()
        self.every_n_images = int(every_n_images)
        self.n_samples = int(n_samples)
        self.seed = seed
        self.key = key
        self.images_axis = images_axis
        self._real: Tensor | None = None
        self._level: int | None = None
        self._logged_at: int | None = None
        self.written: list[Path] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.images_axis or not trainer.is_global_zero:
            return
        for logger in _wandb_loggers(trainer):
            run = logger.experiment
            if callable(getattr(run, "define_metric", None)):
                run.define_metric(IMAGES_AXIS)
                run.define_metric("*", step_metric=IMAGES_AXIS)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._level = pl_module.level

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        images = batch["image"] if isinstance(batch, dict) else batch
        if self._real is None or len(self._real) < self.n_samples:
            self._real = images[: self.n_samples].detach()
        shown, level = pl_module.images_shown, pl_module.level
        before = shown - images.shape[0] * trainer.world_size
        crossed = (
            self.every_n_images > 0
            and shown // self.every_n_images > max(0, before) // self.every_n_images
        )
        changed = self._level is not None and level != self._level
        self._level = level
        if crossed or changed:
            self.log_grid(trainer, pl_module, "new level" if changed else None)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._real is not None and self._logged_at != pl_module.images_shown:
            self.log_grid(trainer, pl_module, "end of training")

    def grid(self, pl_module: pl.LightningModule, real: Tensor, note: str | None = None):
        """The picture (uint8 ``[H, W]``): generated (fixed latents) | real, captioned."""
        fake = pl_module.sample(self.n_samples, seed=self.seed, ema=pl_module.ema_active)
        fake = fake.float().cpu()
        real = real_at(real, pl_module.resolution, pl_module.alpha).float().cpu()
        side = pl_module.resolution
        shape = shape_text([side] * (fake.dim() - 2))
        caption = [
            # Levels counted from 1, as the progress lines count them.
            f"level {pl_module.level + 1}/{pl_module.generator.n_levels} ({shape}), "
            f"fade-in alpha {pl_module.alpha:.2f}, "
            f"{pl_module.images_shown:,} images shown" + (f" ({note})" if note else "")
        ]
        ncols = None if fake.dim() == 4 else 1  # 3D: one montage per row
        panels = [image_grid(fake, ncols), image_grid(real[: self.n_samples], ncols)]
        picture = side_by_side(panels, ["generated (fixed latents)", "real (as D sees them)"])
        return titled(picture, caption)

    def log_grid(self, trainer, pl_module, note: str | None = None) -> None:
        # On every rank: trainer.log_dir broadcasts under DDP, a rank-0-only call would hang.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if self._real is None or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        with torch.no_grad():
            picture = self.grid(pl_module, self._real, note)
        pl_module.train(was_training)
        shown = pl_module.images_shown
        self._logged_at = shown
        self.written.append(save_png(picture, log_dir / "images" / GRID_NAME.format(shown)))
        caption = (
            f"level {pl_module.level + 1}/{pl_module.generator.n_levels}, "
            f"{pl_module.resolution} px, {shown} images shown"
        )
        wandb_loggers = _wandb_loggers(trainer)
        for logger in trainer.loggers:
            if logger in wandb_loggers:
                import wandb

                # One W&B row with its x value (the define_metric axis), as log_image would.
                row = {self.key: [wandb.Image(picture, caption=caption)], IMAGES_AXIS: float(shown)}
                logger.log_metrics(row, step=trainer.global_step)
            elif callable(getattr(logger, "log_image", None)):
                logger.log_image(
                    key=self.key, images=[picture], step=trainer.global_step, caption=[caption]
                )
