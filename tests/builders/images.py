"""Synthetic images made in memory: smooth blobs for a noise GAN, paired T1/T2 phantoms for a
CycleGAN, and their data modules."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from tests.builders.networks import SIZE


class Blobs(Dataset):
    """Smooth random blobs in [-1, 1] (seed 0), ``{"image": [1, *(size,) * d]}``: uniform noise
    on a ``coarse ** d`` grid, interpolated up to ``size`` (default ``SIZE[d]``)."""

    def __init__(self, spatial_dims: int, n: int = 8, size: int | None = None, coarse: int = 2):
        g = torch.Generator().manual_seed(0)
        low = torch.rand(n, 1, *(coarse,) * spatial_dims, generator=g) * 2 - 1
        mode = "bilinear" if spatial_dims == 2 else "trilinear"
        size = (size or SIZE[spatial_dims],) * spatial_dims
        self.images = torch.nn.functional.interpolate(low, size=size, mode=mode)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i]}


class BlobData(pl.LightningDataModule):
    """``Blobs`` for a noise GAN; records the batch size of every train loader it serves (the
    progressive schedule changes it)."""

    def __init__(
        self,
        spatial_dims: int = 2,
        batch_size: int = 2,
        n: int = 8,
        size: int | None = None,
        coarse: int = 2,
    ) -> None:
        super().__init__()
        self.spatial_dims, self.batch_size = spatial_dims, batch_size
        self.dataset = Blobs(spatial_dims, n, size, coarse)
        self.batch_sizes_served: list[int] = []

    def train_dataloader(self) -> DataLoader:
        self.batch_sizes_served.append(self.batch_size)
        return DataLoader(self.dataset, self.batch_size, drop_last=True)


def phantom(
    shape: tuple[int, ...], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ellipsoid 'brain' with a 'ventricle': T1 (bright tissue, dark fluid) and T2
    (inverted contrast), both ``[1, *shape]`` in [-1, 1], paired."""
    grids = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij")
    radii = 0.6 + 0.3 * torch.rand(len(shape), generator=generator)
    centre = 0.15 * (torch.rand(len(shape), generator=generator) - 0.5)
    r = sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, radii))
    tissue = (r < 1).float()
    fluid = (r < 0.15).float()
    t1 = -1 + tissue * (1.6 - 1.2 * fluid)
    t2 = -1 + tissue * (0.8 + 1.0 * fluid)
    return t1.unsqueeze(0), t2.unsqueeze(0)


class PhantomPairs(Dataset):
    def __init__(self, shape: tuple[int, ...], n: int, paired: bool, seed: int) -> None:
        self.shape, self.n, self.paired, self.seed = shape, n, paired, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t1, t2 = phantom(self.shape, torch.Generator().manual_seed(self.seed + i))
        if not self.paired:  # T2 of another subject: unpaired, as CycleGAN trains
            _, t2 = phantom(self.shape, torch.Generator().manual_seed(self.seed + 10_000 + i))
        return {"t1": t1, "t2": t2}


class PhantomDataModule(pl.LightningDataModule):
    """``mode="cyclegan"`` batches: unpaired train, paired validation."""

    def __init__(self, spatial_dims: int = 2, size: int = 16, batch_size: int = 2, n: int = 4):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.image_shape = (size + 1,) + (size,) * (spatial_dims - 1)  # odd on purpose
        self.channels = 1
        self.batch_size, self.n = batch_size, n

    def train_dataloader(self) -> DataLoader:
        return DataLoader(PhantomPairs(self.image_shape, self.n, False, 0), self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(PhantomPairs(self.image_shape, 2, True, 500), self.batch_size)
