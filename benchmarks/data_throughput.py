"""Samples per second of each data module (num_workers=0, batch 8), 2D 64^2 and 3D 32^3.

A cyclegan sample is one T1 and one T2 image (two independent warps for ICBM); compare with the
training step of the default models (0.1-1 s per batch of 8 on a CPU). The folder module reads
its preprocessed cache, so it only indexes (and augments, if asked). Runs with one intra-op
thread, as a dataloader worker does, which is also faster than two on a busy 2-core machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

# Run as a script from anywhere: the repository root holds data_modules.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from data_modules import Augmentation, IcbmDataModule, NiftiFolderDataModule  # noqa: E402


def rate(dm, batches: int = 8) -> float:
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up (first-use caches)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += len(next(it)["t1"])
    return n / (time.perf_counter() - start)


def fake_ixi(root: Path, n: int = 6) -> Path:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in (96, 112, 80)], indexing="ij")
    head = ((x**2 + y**2 + z**2) < 0.7).astype(np.float32)
    for i in range(n):
        for m, scale in (("T1", 100), ("T2", 60)):
            nib.save(
                nib.Nifti1Image(head * scale, np.diag([2.0, 2.0, 2.0, 1.0])),
                root / f"IXI{i:03d}-HH-1-{m}.nii.gz",
            )
    return root


def main() -> None:
    torch.set_num_threads(1)
    for dims in (2, 3):
        dm = IcbmDataModule(spatial_dims=dims, batch_size=8, samples_per_epoch=128)
        print(f"IcbmDataModule {dims}D {dm.image_shape}: {rate(dm):.0f} samples/s")
    with tempfile.TemporaryDirectory() as tmp:
        root = fake_ixi(Path(tmp))
        for dims in (2, 3):
            for aug in (None, Augmentation()):
                dm = NiftiFolderDataModule(
                    str(root),
                    spatial_dims=dims,
                    batch_size=8,
                    samples_per_epoch=128,
                    cache_dir=str(Path(tmp) / "cache"),
                    augmentation=aug,
                    val_fraction=0,
                    test_fraction=0,
                )
                dm.setup()
                label = "augmented" if aug else "plain"
                print(
                    f"NiftiFolderDataModule {dims}D {dm.image_shape} {label}: {rate(dm):.0f} samples/s"
                )


if __name__ == "__main__":
    main()
