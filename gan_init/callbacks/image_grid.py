"""Image grid of CycleGAN validation translations: T2 | T2->T1 | T1 | T1->T2 | T2->T1->T2.

The module returns the images from ``validation_step``; this callback keeps the first
``n_images`` validation cases (over as many batches as that takes), builds a grid with named
columns (``gan_init.core.visualize``: upright, enlarged; 3D: the three middle slices) and hands it to
every logger that
can show images (``log_image``, e.g. ``WandbLogger``). With any logger it also saves the PNG
under the run's log dir (``<log_dir>/images/``), so a run without W&B still has its pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from gan_init.core.visualize import image_grid, save_png

COLUMNS = ("real_t2", "fake_t1", "real_t1", "fake_t2", "rec_t2")
TITLES = ("T2", "T2->T1", "T1", "T1->T2", "T2->T1->T2")
CAPTION = "T2 | T2->T1 = G_T2->T1(T2) | T1 | T1->T2 = G_T1->T2(T1) | T2->T1->T2 (cycle)"


class CycleGANImageGrid(pl.Callback):
    """Log a grid of ``n_images`` validation cases every ``every_n_epochs`` epochs.

    Args:
        n_images: rows of the grid (cases from the first validation batch).
        every_n_epochs: log on epochs where ``(epoch + 1) % every_n_epochs == 0``.
        key: the logged image's name.
    """

    def __init__(self, n_images: int = 4, every_n_epochs: int = 1, key: str = "val/translations"):
        super().__init__()
        self.n_images = n_images
        self.every_n_epochs = max(1, every_n_epochs)
        self.key = key
        self._images: dict[str, Tensor] | None = None
        self.last_path: Path | None = None

    def _active(self, trainer: pl.Trainer) -> bool:
        return (
            not trainer.sanity_checking
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
            and trainer.is_global_zero
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule):
        self._images = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0 or not self._active(trainer):
            return
        if not isinstance(outputs, dict) or not all(k in outputs for k in COLUMNS):
            return
        have = 0 if self._images is None else len(self._images[COLUMNS[0]])
        if have >= self.n_images:
            return
        new = {k: outputs[k][: self.n_images - have].detach().float().cpu() for k in COLUMNS}
        if self._images is not None:
            new = {k: torch.cat([self._images[k], new[k]]) for k in COLUMNS}
        self._images = new

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule):
        if trainer.sanity_checking:
            return
        # On every rank: trainer.log_dir broadcasts under DDP, a rank-0-only call would hang.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if self._images is None or not self._active(trainer):
            return
        grid = self.grid_of(self._images, self.n_images, epoch=trainer.current_epoch)
        self._images = None
        name = f"translations_epoch{trainer.current_epoch:04d}_step{trainer.global_step:07d}.png"
        self.last_path = save_png(grid, log_dir / "images" / name)
        for logger in trainer.loggers:
            log_image = getattr(logger, "log_image", None)
            if callable(log_image):
                log_image(key=self.key, images=[grid], step=trainer.global_step, caption=[CAPTION])

    @staticmethod
    def grid_of(outputs: dict[str, Tensor], n_images: int = 4, epoch: int | None = None):
        """The grid this callback logs (uint8 ``[H, W]``), for ``validation_step`` outputs."""
        when = "" if epoch is None else f", epoch {epoch}"
        return image_grid(
            [outputs[k][:n_images] for k in COLUMNS],
            titles=TITLES,
            caption=f"CycleGAN validation{when}: {CAPTION}",
        )
