"""NIfTI volumes written to disk: head phantoms in IXI and BraTS folders, and scans for
``gan-init translate`` (a training grid, an off-centre head in a flipped, finer scan)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from tests.builders.images import phantom

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
