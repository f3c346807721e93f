"""A fake noise GAN and data module with the interfaces the evaluation callbacks use."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class FakeData(pl.LightningDataModule):
    """A data module with the agreed ``real_images`` interface (each split its own images)."""

    def __init__(self, spatial_dims: int = 2, side: int = 16) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.image_shape = (1, *(side,) * spatial_dims)

    def real_images(self, n: int, split: str = "val") -> torch.Tensor:
        g = torch.Generator().manual_seed({"val": 0, "test": 1, "train": 2}[split])
        return torch.rand(n, *self.image_shape, generator=g) * 2 - 1

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(64, 1)), batch_size=4)


class FakeGAN(pl.LightningModule):
    """Implements the noise-GAN interface; its output side grows from 8 to 16 halfway."""

    def __init__(self, spatial_dims: int = 2, loss_at: dict[int, float] | None = None) -> None:
        super().__init__()
        self.latent_dim = 4
        self.spatial_dims = spatial_dims
        self.images_shown = 0
        self.lin = nn.Linear(4, 1)
        self.loss_at = loss_at or {}
        self.sampled_sides: list[int] = []

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, ema: bool = True) -> torch.Tensor:
        side = 8 if self.images_shown < 32 else 16
        self.sampled_sides.append(side)
        g = torch.Generator().manual_seed(seed or 0)
        images = torch.rand(n, 1, *(side,) * self.spatial_dims, generator=g) * 2 - 1
        return images * math.nan if self.loss_at else images  # a diverging GAN samples NaN

    def training_step(self, batch, batch_idx):
        self.images_shown += batch[0].shape[0]
        loss = self.loss_at.get(batch_idx, 1.0)
        for name in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            self.log(f"train/{name}", float(loss))
        self.log("progress/images_shown", float(self.images_shown))
        return self.lin(torch.ones(1, 4)).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)
