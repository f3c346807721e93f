"""Checkpoint files of tiny networks, written as the project writes them (no Lightning run)."""

from __future__ import annotations

from pathlib import Path

import torch

from gan_init.models import CycleGAN, ProgressiveGAN
from gan_init.networks import BackboneSpec, NoiseGenerator, ProgressiveDiscriminator
from tests.builders.networks import SIZE, random_cyclegan, tiny_cyclegan, tiny_spec


def save_noise_gan(tmp_path: Path, spatial_dims: int, size: int) -> str:
    """Write ``tmp_path/noise.ckpt``: a noise GAN (n_down 1, from ``size // 4``) whose EMA
    generator differs from G, so ``--no-ema`` shows."""
    torch.manual_seed(0)
    spec = tiny_spec(spatial_dims, n_down=1)
    g = NoiseGenerator(spec, image_size=size, latent_dim=8, start_resolution=size // 4)
    gan = ProgressiveGAN(g, ProgressiveDiscriminator(spatial_dims, 1, size, size // 4, 4))
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.mul_(1.5)
    ckpt = {"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}
    gan.on_save_checkpoint(ckpt)
    path = tmp_path / "noise.ckpt"
    torch.save(ckpt, path)
    return str(path)


def save_cyclegan(
    path: Path,
    spec: BackboneSpec,
    seed: int = 0,
    image_size: int | None = 0,
    voxel_spacing: float | None = None,
) -> CycleGAN:
    """Write a gan-init CycleGAN checkpoint (what ``CycleGAN.on_save_checkpoint`` writes), as if
    trained at ``image_size`` (0: the tiny noise GAN's ``SIZE``; None: recorded as unknown)."""
    model = random_cyclegan(spec, seed)
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


def write_checkpoint(path, spatial_dims, image_shape=None, spacing=None, upright=False):
    """A project checkpoint without Lightning: state_dict + gan_init metadata."""
    torch.manual_seed(0)
    model = tiny_cyclegan(spatial_dims)
    if image_shape is not None:
        model.data_info["image_shape"] = list(image_shape)
    model.data_info["voxel_spacing"] = spacing
    if upright:  # as the ICBM and NIfTI-folder modules record their axial slices
        model.data_info["slicing"] = {"axis": 2, "plane": "axial", "display": "upright"}
    torch.save({"state_dict": model.state_dict(), "gan_init": model.metadata()}, path)
    return model
