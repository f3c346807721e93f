"""Tiny CycleGAN pieces for tests: synthetic T1/T2 data made in memory, tiny networks."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from gan_init.models.cyclegan import CycleGAN
from gan_init.networks import BackboneSpec, CycleGANGenerator, PatchGANDiscriminator


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


def tiny_cyclegan(spatial_dims: int = 2, **kwargs) -> CycleGAN:
    spec = BackboneSpec(spatial_dims=spatial_dims, base_width=4, n_blocks=1)
    disc = PatchGANDiscriminator(spatial_dims=spatial_dims, base_width=4, n_layers=1)
    kwargs.setdefault("ssim_kernel", 3)
    return CycleGAN(CycleGANGenerator(spec), disc, **kwargs)


def tiny_trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = dict(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
