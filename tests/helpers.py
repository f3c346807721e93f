"""Builders shared by the test modules (one place; a test module never imports another one).

Tiny networks (widths 4, 16 px in 2D, 8^3 in 3D), synthetic data made in memory or written to a
folder, a CPU trainer, tiny configs for the CLI, and the reference CycleGAN networks. Fixtures
built on them live in ``conftest.py``; shipped configs shrunk to test size in ``tiny_configs.py``.
Importable as ``tests.helpers`` (also by ``class_path`` in a config run in a subprocess).
"""

from __future__ import annotations

import math
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from gan_init.models import CycleGAN, ProgressiveGAN
from gan_init.networks import (
    BackboneSpec,
    CycleGANGenerator,
    NoiseGenerator,
    PatchGANDiscriminator,
    ProgressiveDiscriminator,
)

REPO = Path(__file__).resolve().parents[1]
SIZE = {2: 16, 3: 8}
# The ProGAN knobs (Karras et al. 2018): pixel norm, nearest upsampling, leaky ReLU, equalized lr.
PROGAN = dict(norm="pixel", upsample="nearest", activation="lrelu", equalized_lr=True)


# ---- tiny networks -----------------------------------------------------------------------------


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


def tiny_progan(
    spatial_dims: int = 2, size: int = 16, grow: str = "full", start_resolution: int = 4
) -> ProgressiveGAN:
    """A noise GAN with the ProGAN knobs, n_down 1 (seed 0): 16 px from 4 has levels 4, 8, 16."""
    torch.manual_seed(0)
    spec = tiny_spec(spatial_dims, n_down=1, **PROGAN)
    g = NoiseGenerator(
        spec, image_size=size, latent_dim=8, grow=grow, start_resolution=start_resolution
    )
    d = ProgressiveDiscriminator(
        spatial_dims, 1, size, min_resolution=start_resolution, base_width=4
    )
    return ProgressiveGAN(g, d)


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


def tiny_cyclegan(spatial_dims: int = 2, spec: BackboneSpec | None = None, **kwargs) -> CycleGAN:
    """A CycleGAN to train (default init): widths 4, one block, a one-layer PatchGAN."""
    spec = spec or BackboneSpec(spatial_dims=spatial_dims, base_width=4, n_blocks=1)
    disc = PatchGANDiscriminator(spatial_dims=spatial_dims, base_width=4, n_layers=1)
    kwargs.setdefault("ssim_kernel", 3)
    return CycleGAN(CycleGANGenerator(spec), disc, **kwargs)


def trained_cyclegan(spec: BackboneSpec, seed: int = 0) -> CycleGAN:
    """A CycleGAN as after training: every weight and bias random (seeded)."""
    torch.manual_seed(seed)
    model = tiny_cyclegan(spec.spatial_dims, spec)
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
    model = trained_cyclegan(spec, seed)
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


# ---- a CPU trainer -----------------------------------------------------------------------------


def cpu_trainer(
    root: Path, max_steps: int = -1, callbacks: list | None = None, **kwargs
) -> pl.Trainer:
    """One CPU device, quiet, no logger, checkpoints or sanity check unless ``kwargs`` say so.
    Lightning counts two optimizer steps (D, G) per GAN batch: ``max_steps = 2 * batches``."""
    defaults = dict(
        default_root_dir=root, max_steps=max_steps, callbacks=callbacks, accelerator="cpu",
        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


# ---- synthetic images in memory ----------------------------------------------------------------


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


# ---- a fake noise GAN and data for the evaluation ----------------------------------------------


class FakeData(pl.LightningDataModule):
    """A data module with the agreed ``real_images`` interface (val and test sets differ)."""

    def __init__(self, spatial_dims: int = 2, side: int = 16) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.image_shape = (1, *(side,) * spatial_dims)

    def real_images(self, n: int, split: str = "val") -> torch.Tensor:
        g = torch.Generator().manual_seed(0 if split == "val" else 1)
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


# ---- NIfTI volumes written to a folder ---------------------------------------------------------

NIFTI_SHAPE = (12, 14, 10)


def head_volumes(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 'head' (ellipsoid) with a 'ventricle' dark in T1 and bright in T2, ``NIFTI_SHAPE``."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in NIFTI_SHAPE], indexing="ij")
    r = 0.75 + 0.1 * rng.random()
    head = (x**2 + y**2 + z**2) < r**2
    csf = (x**2 + (y / 2) ** 2 + z**2) < 0.1
    t1 = head * 100.0 - csf * 70 + rng.random(NIFTI_SHAPE) * 3
    t2 = head * 40.0 + csf * 80 + rng.random(NIFTI_SHAPE) * 3
    return t1.astype(np.float32), t2.astype(np.float32)


def save_nifti(data: np.ndarray, path: Path) -> None:
    """Write ``data`` with 16 mm voxels, making the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([16.0, 16.0, 16.0, 1.0])), path)


def ixi_folder(root: Path, n: int = 5) -> Path:
    """``n`` subjects named as IXI names them (``IXI000-HH-1200-T1.nii.gz``)."""
    for i in range(n):
        t1, t2 = head_volumes(i)
        save_nifti(t1, root / f"IXI{i:03d}-HH-{1200 + i}-T1.nii.gz")
        save_nifti(t2, root / f"IXI{i:03d}-HH-{1200 + i}-T2.nii.gz")
    return root


def brats_folder(root: Path, n: int = 4) -> Path:
    """``n`` subjects in BraTS folders, with a T1ce beside T1 (which must not be taken for T1)."""
    for i in range(n):
        name = f"BraTS20_Training_{i:03d}"
        t1, t2 = head_volumes(i)
        save_nifti(t1, root / name / f"{name}_t1.nii.gz")
        save_nifti(t2, root / name / f"{name}_t2.nii.gz")
        save_nifti(t1, root / name / f"{name}_t1ce.nii.gz")
    return root


# ---- tiny configs for the CLI and subprocesses -------------------------------------------------


def tiny_noise_gan_config(dims: int) -> dict[str, Any]:
    """``tiny_noise_gan(dims, "stem")`` on ``BlobData`` as ``model`` and ``data`` config
    sections."""
    size = SIZE[dims]
    return {
        "model": {
            "class_path": "gan_init.models.ProgressiveGAN",
            "init_args": {
                "generator": {
                    "class_path": "gan_init.networks.NoiseGenerator",
                    "init_args": {"backbone": tiny_spec(dims).to_dict(), "image_size": size,
                                  "latent_dim": 8, "grow": "stem", "start_resolution": 2},
                },
                "discriminator": {
                    "class_path": "gan_init.networks.ProgressiveDiscriminator",
                    "init_args": {"spatial_dims": dims, "image_size": size, "min_resolution": 2,
                                  "base_width": 4, "patch_stem": True},
                },
            },
        },
        "data": {"class_path": "tests.helpers.BlobData", "init_args": {"spatial_dims": dims}},
    }  # fmt: skip


def noise_config(tmp_path: Path, callbacks: list | None = None) -> str:
    """``tmp_path/noise.yaml``: ``gan-init fit`` of the tiny 2D noise GAN for 2 steps, quiet, into
    ``tmp_path/run``."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 2, "logger": False,
            "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path / "run"),
            "callbacks": callbacks or [],
        },
        **tiny_noise_gan_config(2),
    }  # fmt: skip
    path = tmp_path / "noise.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def subprocess_env() -> dict[str, str]:
    """The environment of a ``gan-init`` subprocess: this checkout first, W&B offline."""
    return dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="offline")


def wait_for(condition, what: str, limit: float = 120.0) -> None:
    """Poll ``condition`` (a failure bound for a stuck process, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


# A stand-in for ``gan-init pipeline`` in a sweep: appends its arguments to $CALLS, exits 3 for
# init_strategy "broken", writes a run summary ("diverged" for "unstable") with eval/swd = seed.
FAKE_RUN = textwrap.dedent(
    """
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    if args["init_strategy"] == "broken":
        sys.exit(3)
    out = os.environ["GAN_INIT_SUMMARY_OUT"]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    status = "diverged" if args["init_strategy"] == "unstable" else "finished"
    json.dump({"status": status, "run_dir": "x", "metrics": {"eval/swd": float(args["seed"])}}, open(out, "w"))
    """
)


def fake_sweep_file(tmp_path: Path, strategies: list[str]) -> Path:
    """A grid over ``strategies`` x seeds 0, 1 that runs ``FAKE_RUN``."""
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    sweep = {
        "method": "grid",
        "metric": {"name": "eval/swd", "goal": "minimize"},
        "parameters": {"init_strategy": {"values": strategies}, "seed": {"values": [0, 1]}},
        "command": ["${interpreter}", str(tmp_path / "fake_run.py"), "${args}"],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


# ---- the reference CycleGAN networks -----------------------------------------------------------
# Written exactly as pytorch-CycleGAN-and-pix2pix builds them (``networks.ResnetGenerator`` /
# ``NLayerDiscriminator`` with instance norm), so their ``state_dict`` keys are the canonical ones
# (the table in ``gan_init/transfer/canonical.py``).

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
PAD = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, d: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            PAD[d](1), CONV[d](dim, dim, 3, bias=True), NORM[d](dim), nn.ReLU(True),
            PAD[d](1), CONV[d](dim, dim, 3, bias=True), NORM[d](dim),
        )  # fmt: skip

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The reference ``ResnetGenerator`` (ngf, n_blocks; 2 downsamplings; 1 channel)."""

    def __init__(self, ngf: int = 8, n_blocks: int = 2, d: int = 2, nc: int = 1) -> None:
        super().__init__()
        model = [PAD[d](3), CONV[d](nc, ngf, 7, bias=True), NORM[d](ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [
                CONV[d](ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                NORM[d](ngf * mult * 2),
                nn.ReLU(True),
            ]
        model += [ResnetBlock(ngf * 4, d) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [
                CONV_T[d](ngf * mult, ngf * mult // 2, 3, 2, padding=1, output_padding=1),
                NORM[d](ngf * mult // 2),
                nn.ReLU(True),
            ]
        model += [PAD[d](3), CONV[d](ngf, nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """The reference ``basic`` PatchGAN with instance norm."""

    def __init__(self, ndf: int = 8, n_layers: int = 3, d: int = 2, nc: int = 1) -> None:
        super().__init__()
        seq = [CONV[d](nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [
                CONV[d](ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=True),
                NORM[d](ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [
            CONV[d](ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=True),
            NORM[d](ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
        seq += [CONV[d](ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def reference_generator(ngf=8, n_blocks=2, d=2, seed=0) -> ResnetGenerator:
    torch.manual_seed(seed)
    net = ResnetGenerator(ngf, n_blocks, d)
    for m in net.modules():  # init normal(0, 0.02) as the reference; random biases to test them
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.normal_(m.bias, 0.0, 0.02)
    return net.eval()


# ---- NIfTI scans and CycleGAN checkpoints for `gan-init translate` --------------------------


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


def write_nifti(path, shape=(11, 13, 9), affine=None):
    _, t2 = phantom(shape, torch.Generator().manual_seed(3))
    data = ((t2[0].numpy() + 1) * 400).astype(np.int16)  # scanner-like integer intensities
    affine = np.diag([1.5, -1.0, 2.0, 1.0]) if affine is None else affine
    affine[:3, 3] = [-8.0, 6.0, -9.0]
    image = nib.Nifti1Image(data, affine)
    image.header["descrip"] = b"test volume"
    nib.save(image, str(path))
    return image


# Training grid of the tests: 2D 16 x 16 slices, 3D 8^3 volumes, both a 120 mm field of view.
GRID = {2: ((16, 16), 7.5), 3: ((8, 8, 8), 15.0)}
HEAD_RADII_MM = np.array([45.0, 55.0, 40.0])  # extent 90 x 110 x 80 mm
HEAD_CENTRE_MM = np.array([20.0, -15.0, 10.0])  # world (RAS) mm


def write_head(path, zooms=(3.0, 2.5, 3.5), shape=(60, 70, 50), radii=HEAD_RADII_MM):
    """An ellipsoid 'head' (a dark 'ventricle' inside) off the centre of a scan with a larger field
    of view (180 x 175 x 175 mm) and finer voxels than training, stored flipped (L, P, S)."""
    affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(shape) - 1) / 2)  # world 0 at the centre
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    r = (((world - HEAD_CENTRE_MM) / radii) ** 2).sum(-1)
    data = np.where(r < 1, 600.0, 0.0) - np.where(r < 0.1, 300.0, 0.0)
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return data, affine
