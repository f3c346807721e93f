"""``gan-init sample``: images from a noise-GAN checkpoint.

2D: a PNG grid (``samples.png``). 3D: one NIfTI volume per sample (``sample_000.nii.gz`` ...)
and a PNG montage of their three mid-slices (``samples.png``). The EMA generator is used unless
``--no-ema``; the same ``--seed`` gives the same images.

    gan-init sample --checkpoint runs/noise_2d/.../last.ckpt --n 64 --out samples/ --seed 0
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from gan_init.models.progressive import load_noise_gan
from gan_init.visualize import image_grid, save_png


def write_samples(
    checkpoint: str,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    ema: bool = True,
    batch_size: int = 16,
) -> list[Path]:
    """Generate ``n`` samples from ``checkpoint`` into ``out``; returns the written files."""
    model = load_noise_gan(checkpoint)
    # One latent draw for all n (batching does not change the images).
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=rng)
    net = model.generator_ema if ema else model.generator
    with torch.no_grad():
        images = torch.cat([net(chunk).clamp(-1, 1) for chunk in z.split(batch_size)])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if model.spatial_dims == 3:
        import nibabel as nib

        for i, volume in enumerate(images[:, 0].numpy().astype(np.float32)):
            path = out / f"sample_{i:03d}.nii.gz"
            nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
            written.append(path)
    grid = image_grid(images, ncols=max(1, math.ceil(math.sqrt(n))))
    written.append(save_png(grid, out / "samples.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-init sample", description="write samples from a noise-GAN checkpoint"
    )
    parser.add_argument("--checkpoint", required=True, help="a noise-stage Lightning checkpoint")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    parser.add_argument("--no-ema", action="store_true", help="use G instead of its EMA")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per forward pass")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n {args.n}: expected at least 1")
    if not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    written = write_samples(
        args.checkpoint, args.n, args.out, seed=args.seed, ema=not args.no_ema,
        batch_size=args.batch_size,
    )  # fmt: skip
    print(f"wrote {len(written)} file(s) to {args.out} (grid: {written[-1]})")
    return 0
