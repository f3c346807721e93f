"""``gan-init sample``: images from a noise-GAN checkpoint.

2D: a PNG grid (``samples.png``). 3D: one NIfTI volume per sample (``sample_000.nii.gz`` ...)
and a PNG montage of their three mid-slices (``samples.png``). The EMA generator is used unless
``--no-ema``; the same ``--seed`` gives the same images.

    gan-init sample --checkpoint runs/noise_2d/.../last.ckpt --n 64 --out samples/ --seed 0
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gan_init.cli.commands.args import Parser, add_device_option, resolve_device
from gan_init.core.visualize import image_grid, save_png
from gan_init.models.progressive import load_noise_gan


def write_samples(
    checkpoint: str,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    ema: bool = True,
    batch_size: int = 16,
    device: str = "cpu",
    voxel_mm: float = 1.0,
) -> list[Path]:
    """Generate ``n`` samples from ``checkpoint`` into ``out``; returns the written files.

    3D NIfTIs: RAS+ voxel order (as the data modules keep volumes), voxel size ``voxel_mm`` in
    the affine, intensities in [-1, 1] (``cal_min``/``cal_max`` and ``descrip`` say so)."""
    model = load_noise_gan(checkpoint).to(resolve_device(device))
    # One latent draw for all n (batching does not change the images).
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=rng)
    net = model.generator_ema if ema else model.generator
    with torch.no_grad():
        chunks = [net(chunk.to(model.device)).clamp(-1, 1).cpu() for chunk in z.split(batch_size)]
        images = torch.cat(chunks)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if model.spatial_dims == 3:
        import nibabel as nib

        for i, volume in enumerate(images[:, 0].numpy().astype(np.float32)):
            path = out / f"sample_{i:03d}.nii.gz"
            image = nib.Nifti1Image(volume, np.diag([voxel_mm] * 3 + [1.0]))
            image.header["cal_min"], image.header["cal_max"] = -1.0, 1.0
            image.header["descrip"] = b"gan-init sample, RAS+, intensity [-1,1]"
            nib.save(image, str(path))
            written.append(path)
    ncols = max(1, math.ceil(math.sqrt(n))) if model.spatial_dims == 2 else 1
    caption = f"{n} samples, seed {seed}, {'EMA ' if ema else ''}generator, {checkpoint}"
    grid = image_grid(images, ncols=ncols, caption=caption)
    written.append(save_png(grid, out / "samples.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="gan-init sample", description="write samples from a noise-GAN checkpoint")
    parser.add_argument("--checkpoint", required=True, help="a noise-stage Lightning checkpoint")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    parser.add_argument("--no-ema", action="store_true", help="use G instead of its EMA")
    parser.add_argument("--batch_size", type=int, default=16, help="samples per forward pass")
    add_device_option(parser)
    parser.add_argument(
        "--voxel_mm", type=float, default=1.0,
        help="3D: voxel size written in the NIfTI affine (the training data's field of view "
        "divided by the image side; the checkpoint does not record it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n {args.n}: expected at least 1")
    if not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    written = write_samples(
        args.checkpoint, args.n, args.out, seed=args.seed, ema=not args.no_ema,
        batch_size=args.batch_size, device=args.device, voxel_mm=args.voxel_mm,
    )  # fmt: skip
    print(f"wrote {len(written)} file(s) to {args.out} (grid: {written[-1]})")
    return 0
