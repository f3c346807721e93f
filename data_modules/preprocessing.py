"""The one preprocessing chain from a NIfTI volume to the images a network sees, used by
``NiftiFolderDataModule`` (training) and ``gan-init translate`` (inference) alike, so the two
cannot drift apart.

The chain, in order (TorchIO):

1. ``read_volume``: one finite 3D volume (a 4D file with one volume is accepted), or a
   ``DataError`` naming the file;
2. ``resample``: canonical (RAS+) orientation, resampling to the target spacing, every other
   image of the subject onto the first one's grid (T2 and mask onto T1); the head mask ``fg``:
   the brain mask when there is one, else the voxels of the first image brighter than its mean
   (TorchIO's default foreground);
3. ``crop_to_head``: crop or pad to the field of view (a cube of ``grid`` voxels for training,
   the checkpoint's training box for translation), centred on the head;
4. ``rescale``: the ``percentiles`` of the head's intensities map to -1 and 1, clipped
   (``tio.RescaleIntensity``), refused when their range has zero width;
5. ``sample_images`` (training) or the translation's slicing: 2D slices of the head's slab turned
   upright and resized to ``size``, or the whole cube resized to ``size``^3.

Training decides the head from T1 for both modalities of a subject (they share one voxel grid);
translation, with one input, from that input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio

from data_modules.base import DataError
from data_modules.geometry import AXIS_INDEX, slab_bounds, upright_slices

if TYPE_CHECKING:  # the discovery's record of one subject's files
    from data_modules.nifti_folder import SubjectFiles


@dataclass(frozen=True)
class Preprocessing:
    """Everything that decides the cached images (and so is part of the cache key)."""

    spatial_dims: int
    size: int
    spacing: float
    fov_mm: float
    axis: str
    slice_range: tuple[float, float]
    percentiles: tuple[float, float]

    @property
    def grid(self) -> int:
        """Voxels per axis of the preprocessed cube."""
        return max(int(round(self.fov_mm / self.spacing)), 2)

    @property
    def voxel_spacing(self) -> float:
        """Spacing (mm) of the images the networks see: the ``grid`` cube resampled to ``size``."""
        return self.grid * self.spacing / self.size


def read_volume(path: Path, what: str) -> tio.ScalarImage:
    """One 3D NIfTI volume as a TorchIO image, or a ``DataError`` naming the file and problem."""
    if not path.is_file():
        raise DataError(f"{what} file {path} is missing (a broken link?): expected a NIfTI file")
    try:
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as err:
        raise DataError(
            f"could not read {what} file {path} ({type(err).__name__}: {err}): expected a "
            "NIfTI volume (.nii or .nii.gz); is it truncated or not a NIfTI file?"
        ) from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise DataError(
            f"{what} file {path} has shape {data.shape}: expected one 3D volume "
            "(a 4D series or a 2D image cannot be used; extract the volume first)"
        )
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise DataError(f"{what} file {path} has {bad} NaN or infinite values: expected finite")
    return tio.ScalarImage(tensor=torch.from_numpy(data)[None], affine=image.affine)


def check_contrast(image: tio.ScalarImage, what: str) -> None:
    """Refuse a constant volume (blank, or a failed conversion)."""
    lo, hi = float(image.data.min()), float(image.data.max())
    if lo == hi:
        raise DataError(
            f"{what} is constant (every voxel {lo:g}): "
            "expected an image with contrast (is it blank, or a failed conversion?)"
        )


def head_mask(data: torch.Tensor) -> torch.Tensor:
    """The head: voxels brighter than the mean (TorchIO's default foreground)."""
    return data > data.mean()


def resample(subject: tio.Subject, spacing: float | Sequence[float]) -> tio.Subject:
    """Step 2: RAS+, ``spacing`` (mm; one number or one per RAS axis), every image onto the first
    one's grid; adds the head mask ``fg`` (the label map ``mask`` when present)."""
    first = next(iter(subject.get_images_names()))
    steps = [tio.ToCanonical(), tio.Resample(spacing if np.isscalar(spacing) else tuple(spacing))]
    if len(subject.get_images_names()) > 1:
        # One voxel grid per subject: T2 (and mask) onto T1's, so pairs are aligned.
        steps.append(tio.Resample(first))
    subject = tio.Compose(steps)(subject)
    ref = subject[first]
    head = subject["mask"].data > 0 if "mask" in subject else head_mask(ref.data)
    subject.add_image(tio.LabelMap(tensor=head, affine=ref.affine), "fg")
    return subject


def crop_to_head(subject: tio.Subject, box: int | Sequence[int]) -> tio.Subject:
    """Step 3: crop or pad to ``box`` voxels (a cube side or a shape) centred on ``fg``."""
    return tio.CropOrPad(box if isinstance(box, int) else tuple(box), mask_name="fg")(subject)


def percentile_range(
    values: torch.Tensor | np.ndarray, percentiles: Sequence[float]
) -> tuple[float, float]:
    """The intensities at ``percentiles`` of ``values`` (the head's voxels)."""
    if isinstance(values, torch.Tensor):
        values = values.double().numpy()
    lo, hi = np.percentile(values, list(percentiles))
    return float(lo), float(hi)


def check_scaling(values: torch.Tensor, percentiles: Sequence[float], what: str) -> None:
    """Refuse a percentile scaling that cannot map the foreground ``values`` to [-1, 1] (TorchIO
    only warns and leaves such an image unscaled)."""
    lo, hi = percentile_range(values, percentiles)
    # Zero width up to float32 rounding of the resampling (a flat image stays flat to ~1e-7).
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo <= 1e-5 * max(abs(lo), abs(hi)):
        raise DataError(
            f"{what}: intensity scaling failed: its {percentiles[0]:g}-{percentiles[1]:g} "
            f"percentile range inside the head is [{lo:g}, {hi:g}] (zero width): expected "
            "an image with contrast (is it blank, or is the head mask wrong?)"
        )


def rescale(subject: tio.Subject, percentiles: Sequence[float]) -> tio.Subject:
    """Step 4: every scalar image's head ``percentiles`` -> -1 and 1, clipped."""
    transform = tio.RescaleIntensity((-1, 1), percentiles=tuple(percentiles), masking_method="fg")
    return transform(subject)


def sample_images(x: torch.Tensor, fg: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Step 5 (training): a cube [n, n, n] -> 2D slices [N, S, S] (upright) or a volume
    [1, S, S, S]."""
    size = prep.size
    if prep.spatial_dims == 3:
        if x.shape[0] != size:
            x = F.interpolate(x[None, None], (size,) * 3, mode="trilinear", align_corners=False)
            x = x[0, 0]
        return x[None]
    normal = AXIS_INDEX[prep.axis]
    first, last = slab_bounds(fg, normal, prep.slice_range)
    slab = x.movedim(normal, 0)[first : last + 1]
    return upright_slices(slab, size, mode="bilinear", antialias=True)


def preprocess(files: SubjectFiles, prep: Preprocessing) -> dict[str, torch.Tensor | list]:
    """One subject -> ``{"t1", "t2": [N, *S] in [-1, 1]}`` (N slices in 2D, 1 volume in 3D),
    plus the source shapes and spacings for reporting."""
    images = {"t1": read_volume(files.t1, "T1"), "t2": read_volume(files.t2, "T2")}
    paths = {"t1": files.t1, "t2": files.t2}
    for key, image in images.items():
        check_contrast(image, f"{key.upper()} file {paths[key]}")
    info = {
        k: [list(v.shape[1:]), [round(float(s), 3) for s in v.spacing]] for k, v in images.items()
    }
    subject = tio.Subject(**images)
    if files.mask is not None:
        mask = read_volume(files.mask, "mask")
        if not (mask.data > 0.5).any():
            raise DataError(
                f"mask file {files.mask} is empty (no voxel above 0.5): expected a brain mask"
            )
        subject.add_image(tio.LabelMap(tensor=mask.data > 0.5, affine=mask.affine), "mask")
    subject = crop_to_head(resample(subject, prep.spacing), prep.grid)
    fg = subject["fg"].data[0] > 0
    where = f"mask file {files.mask}" if files.mask is not None else f"T1 file {files.t1}"
    if not fg.any():
        raise DataError(
            f"the foreground of {where} is empty after resampling to {prep.spacing:g} mm and "
            f"cropping to {prep.fov_mm:g} mm: expected a head (or brain) in the field of view"
        )
    for key in ("t1", "t2"):
        check_scaling(
            subject[key].data[0][fg], prep.percentiles, f"{key.upper()} file {paths[key]}"
        )
    subject = rescale(subject, prep.percentiles)
    out = {}
    for key in ("t1", "t2"):
        x = subject[key].data[0].float()
        if not bool(torch.isfinite(x).all()) or x.abs().max() > 1 + 1e-3 or x.max() == x.min():
            raise DataError(
                f"{key.upper()} file {paths[key]}: intensity scaling to [-1, 1] failed (values "
                f"{float(x.min()):g} to {float(x.max()):g} after it): expected an image with "
                "contrast inside the head"
            )
        if files.mask is not None:
            x = torch.where(fg, x, torch.full_like(x, -1.0))
        out[key] = sample_images(x, fg, prep)
    return {**out, "info": info}
