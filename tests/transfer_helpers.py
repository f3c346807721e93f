"""Tiny pieces for the weight-transfer tests: a CycleGAN checkpoint written without training, a
noise GAN with the same knobs, synthetic images and a CPU trainer."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from gan_init.models import CycleGAN, ProgressiveGAN
from gan_init.networks import (
    BackboneSpec,
    CycleGANGenerator,
    NoiseGenerator,
    PatchGANDiscriminator,
    ProgressiveDiscriminator,
)

SIZE = {2: 16, 3: 8}


def tiny_spec(spatial_dims: int = 2, equalized_lr: bool = False, **knobs) -> BackboneSpec:
    """2D: 16 px, n_down 2 (bottleneck 4); 3D: 8^3, n_down 1 (bottleneck 4)."""
    knobs = {"n_down": 2 if spatial_dims == 2 else 1, "base_width": 4, "n_blocks": 1, **knobs}
    return BackboneSpec(spatial_dims=spatial_dims, equalized_lr=equalized_lr, **knobs)


def tiny_noise_gan(
    spatial_dims: int = 2,
    grow: str = "stem",
    spec: BackboneSpec | None = None,
    patch_stem: bool = True,
    seed: int = 1,
) -> ProgressiveGAN:
    """Stem from 2 px: 2D full levels 2, 4, 8, 16 (stem: 8, 16); 3D full 2, 4, 8 (stem: 4, 8)."""
    torch.manual_seed(seed)
    spec = spec or tiny_spec(spatial_dims)
    size = SIZE[spatial_dims]
    g = NoiseGenerator(spec, image_size=size, latent_dim=8, grow=grow, start_resolution=2)
    d = ProgressiveDiscriminator(
        spatial_dims, 1, size, min_resolution=2, base_width=4, patch_stem=patch_stem
    )
    return ProgressiveGAN(g, d)


def tiny_cyclegan(spec: BackboneSpec, seed: int = 0) -> CycleGAN:
    """A CycleGAN as after training: every weight and bias random (seeded)."""
    torch.manual_seed(seed)
    disc = PatchGANDiscriminator(spatial_dims=spec.spatial_dims, base_width=4, n_layers=1)
    model = CycleGAN(CycleGANGenerator(spec), disc, ssim_kernel=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model


def save_cyclegan(
    path: Path,
    spec: BackboneSpec,
    seed: int = 0,
    image_size: int | None = 0,
    voxel_spacing: float | None = None,
) -> CycleGAN:
    """Write a gan-init CycleGAN checkpoint (what ``CycleGAN.on_save_checkpoint`` writes), as if
    trained at ``image_size`` (0: the tiny noise GAN's ``SIZE``; None: recorded as unknown)."""
    model = tiny_cyclegan(spec, seed)
    d = spec.spatial_dims
    if image_size is not None:
        model.data_info["image_shape"] = [image_size or SIZE[d]] * d
    model.data_info["voxel_spacing"] = voxel_spacing
    torch.save(
        {
            "state_dict": model.state_dict(),
            "gan_init": model.metadata(),
            "hyper_parameters": dict(model.hparams),
        },
        path,
    )
    return model


class Blobs(Dataset):
    """Smooth random blobs in [-1, 1], ``{"image": [1, *(size,)*d]}``."""

    def __init__(self, spatial_dims: int, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        low = torch.rand(n, 1, *(2,) * spatial_dims, generator=g) * 2 - 1
        mode = "bilinear" if spatial_dims == 2 else "trilinear"
        size = (SIZE[spatial_dims],) * spatial_dims
        self.images = torch.nn.functional.interpolate(low, size=size, mode=mode)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i]}


class BlobData(pl.LightningDataModule):
    def __init__(self, spatial_dims: int = 2, batch_size: int = 2, n: int = 8) -> None:
        super().__init__()
        self.spatial_dims, self.batch_size, self.n = spatial_dims, batch_size, n

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Blobs(self.spatial_dims, self.n), self.batch_size, drop_last=True)


def cpu_trainer(root: Path, max_steps: int, callbacks: list, **kwargs) -> pl.Trainer:
    """Lightning counts two optimizer steps (D, G) per batch: ``max_steps = 2 * batches``."""
    defaults = dict(
        default_root_dir=root, max_steps=max_steps, callbacks=callbacks, accelerator="cpu",
        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
