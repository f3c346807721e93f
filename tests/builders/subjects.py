"""A folder of synthetic subjects as a scanner would write them: ellipsoid heads of random size
and position, T1- and T2-like contrast (white matter bright in T1 and dark in T2, CSF the other
way round), each subject with its own voxel size, matrix and orientation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

# Tissue intensities (arbitrary scanner units): scalp/fat, grey matter, white matter, CSF.
T1_CONTRAST = {"scalp": 700.0, "gm": 450.0, "wm": 800.0, "csf": 120.0}
T2_CONTRAST = {"scalp": 350.0, "gm": 600.0, "wm": 380.0, "csf": 1100.0}
# Voxel orders a scanner may store (a permutation and flips of RAS).
ORIENTATIONS = [("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S"), ("P", "S", "R"), ("A", "I", "L")]
_AXIS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def head_subject(
    seed: int, fov_mm: float = 240.0, slice_mm: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One subject: ``(t1, t2, affine)`` on a random voxel grid covering about ``fov_mm``;
    ``slice_mm``: the voxel size along the superior axis (default: random as the others)."""
    rng = np.random.default_rng(seed)
    zooms = rng.uniform(4.0, 6.5, 3)
    codes = ORIENTATIONS[seed % len(ORIENTATIONS)]
    if slice_mm is not None:
        zooms[[c in "SI" for c in codes].index(True)] = slice_mm
    shape = tuple(int(fov_mm // z) for z in zooms)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    for i, code in enumerate(codes):  # voxel axis i runs along world axis ``axis``
        axis, sign = _AXIS[code]
        affine[axis, i] = sign * zooms[i]
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(shape) - 1) / 2)  # world 0 at the centre
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    radii = rng.uniform([60, 75, 60], [75, 95, 75])  # mm, R-L x A-P x S-I
    centre = rng.uniform(-12, 12, 3)
    r = np.sqrt((((world - centre) / radii) ** 2).sum(-1))
    ventricles = np.sqrt((((world - centre) / (radii * [0.15, 0.35, 0.2])) ** 2).sum(-1))
    tissue = {
        "scalp": (r < 1) & (r >= 0.88),
        "gm": (r < 0.88) & (r >= 0.7),
        "wm": (r < 0.7) & (ventricles >= 1),
        "csf": (r < 0.7) & (ventricles < 1),
    }
    noise = rng.normal(0, 15, (2, *shape))
    t1 = sum(T1_CONTRAST[k] * m for k, m in tissue.items()) + np.abs(noise[0])
    t2 = sum(T2_CONTRAST[k] * m for k, m in tissue.items()) + np.abs(noise[1])
    return t1.astype(np.float32), t2.astype(np.float32), affine


def subjects_folder(
    root: Path, n: int = 6, layout: str = "ixi", slice_mm: float | None = None
) -> Path:
    """``n`` synthetic subjects under ``root``, named as IXI (``IXI000-T1.nii.gz``) or BraTS
    (``BraTS_000/BraTS_000_t1.nii.gz``) name them."""
    for i in range(n):
        t1, t2, affine = head_subject(i, slice_mm=slice_mm)
        for name, data in (("t1", t1), ("t2", t2)):
            if layout == "ixi":
                path = root / f"IXI{i:03d}-{name.upper()}.nii.gz"
            else:
                path = root / f"BraTS_{i:03d}" / f"BraTS_{i:03d}_{name}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, affine), str(path))
    return root
