"""The built-in dataset: a stream of paired T1/T2 "subjects" made from the ICBM 2009c templates.

One brain (the ICBM 2009c nonlinear symmetric T1 and T2 templates, 1 mm, co-registered; MNI
licence, Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University) becomes a stream of subjects by random spatial
deformation (affine + elastic, the same warp on T1 and T2) and intensity effects (bias field,
gamma, noise). Fetch the templates once with ``make data``.

Held out, for one template: validation and test draws use deformation seeds that no train
draw can use (``stream.generator_seed``: the split is in the seed's bits), validation and
test seeds are disjoint from each other, and (2D, ``holdout_slices``) validation and test take
their slices from interleaved slice positions that train never sees (every 5th slice each, 1 mm
apart in the template). They are the same brain: a held-out image is an unseen warp (and, in
2D, an unseen slice position) of the anatomy the train images come from, not unseen anatomy.

Speed: the templates are cropped to the head (or brain) and downsampled once, with area
averaging, to the target size; every sample is then one warp at the target size.
"""

from __future__ import annotations

import functools
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from data_modules.augment import Augmentation
from data_modules.base import T1T2DataModule
from data_modules.geometry import (
    AXES,
    AXIS_INDEX,
    check_slice_range,
    image_shape_for,
    mask_extent,
    slab_bounds,
    upright_slices,
)
from data_modules.stream import Bank
from gan_init.core.assets import asset_path
from gan_init.core.registry import check_choice

_MARGIN_MM = 6  # room around the head/brain, so warps do not push it out of the frame
# 2D held-out slices: of every 5 consecutive slice positions (1 mm apart), 3 train, 1 val, 1 test.
# Train slices stay at most 2 mm apart, finer than the in-plane pixel at the built-in sizes.
_SLICE_PERIOD = 5
_SLICE_ROLE = {2: "val", 4: "test"}


class IcbmDataModule(T1T2DataModule):
    """Paired T1/T2 samples from the ICBM 2009c templates, warped; 2D slices or 3D volumes.

    Train batches: mode ``cyclegan`` -> ``{"t1": [B, 1, *S], "t2": [B, 1, *S]}`` (unpaired:
    independent draws); mode ``noise`` -> ``{"image": [B, 1, *S]}``. Validation/test batches:
    ``{"t1", "t2"}`` paired. S = ``image_shape``; values float32 in [-1, 1]. 2D images are in
    display order (anterior or superior at the top); 3D volumes in RAS+ voxel order.

    Args:
        spatial_dims: 2 (slices) or 3 (volumes).
        size: Image side in pixels/voxels; None: 64 in 2D, 32 in 3D.
        mode: ``cyclegan`` (unpaired T1 and T2) or ``noise`` (one modality, see ``modality``).
        modality: The image of mode ``noise``, and the default of ``real_images``: ``t1``/``t2``.
        batch_size: Train/validation batch size (a callback may change it between epochs).
        num_workers: DataLoader worker processes.
        seed: Seed of the train stream; None: the run's seed (``seed_everything``), so each
            seed of a sweep draws its own stream. The value used is recorded (``data.json``).
        split_seed: Seed of the validation and test draws (fixed, not the run's seed: every run
            of a sweep is evaluated on the same images).
        holdout_slices: 2D only: validation and test take their slices from interleaved
            positions (every 5th slice each) that train never uses; False: all three splits
            draw from every slice (they still differ by their deformation seeds).
        skull_strip: Brain only (the templates' brain-extracted versions), or the whole head.
        axis: 2D only: slice plane, ``axial``, ``coronal`` or ``sagittal``.
        slice_range: 2D only: slices taken from this fraction of the brain's extent along the
            slice axis (default: 40%-75%, ventricles and cortex, no cerebellum).
        samples_per_epoch: Train samples per epoch (the stream is endless).
        val_samples: Validation (and test) samples, the same every epoch.
        augmentation: Strengths of the random warps and intensity effects.
        train_subjects: A training set of this many subjects (a scarce-data regime); None: the
            endless stream, a new subject for every sample. A subject is one warp + intensity
            draw, fixed by ``split_seed`` (the same subjects for every run seed and for both
            stages); in 2D its images are that draw applied to each training slice position, so
            the training set is ``train_subjects`` x the training slices, in 3D
            ``train_subjects`` volumes. No other augmentation applies to them: the network sees
            the same fixed images again and again, as with a small real dataset (augmentation
            for the critic is its own, named option: ``model.augment``). Validation and test
            are unchanged by it.
    """

    endless = True

    def __init__(
        self,
        spatial_dims: int = 2,
        size: int | None = None,
        mode: str = "cyclegan",
        modality: str = "t1",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int | None = None,
        skull_strip: bool = True,
        axis: str = "axial",
        slice_range: tuple[float, float] = (0.4, 0.75),
        samples_per_epoch: int = 2048,
        val_samples: int = 64,
        augmentation: Augmentation = Augmentation(),  # noqa: B008 (frozen dataclass)
        split_seed: int = 0,
        holdout_slices: bool = True,
        train_subjects: int | None = None,
    ) -> None:
        super().__init__(
            spatial_dims,
            size,
            mode,
            modality,
            batch_size,
            num_workers,
            seed,
            samples_per_epoch,
            augmentation,
            split_seed,
            train_subjects,
        )
        self.holdout_slices = bool(holdout_slices)
        self.slices: dict[str, list[int]] = {}
        self.skull_strip = skull_strip
        self.axis = check_choice("axis", axis, AXES)
        self.slice_range = check_slice_range(slice_range)
        if samples_per_epoch < 1 or val_samples < 1:
            raise ValueError("samples_per_epoch and val_samples must be at least 1")
        self.eval_samples = val_samples

    def _build_banks(self) -> dict[str, Bank]:
        bank = icbm_bank(
            self.spatial_dims, self.size, self.skull_strip, self.axis, self.slice_range
        )
        # One brain for every split: the splits differ by their seeds (and 2D slice positions).
        if self.spatial_dims == 3 or not self.holdout_slices:
            self.slices = {split: list(range(len(bank))) for split in ("train", "val", "test")}
        else:
            role = [_SLICE_ROLE.get(k % _SLICE_PERIOD, "train") for k in range(len(bank))]
            self.slices = {
                s: [k for k, r in enumerate(role) if r == s] for s in ("train", "val", "test")
            }
            if not all(self.slices.values()):
                raise ValueError(
                    f"slice_range={self.slice_range} gives {len(bank)} slice(s), too few to hold "
                    f"out validation and test slices (at least {_SLICE_PERIOD}): widen slice_range, "
                    "or set holdout_slices: false (--data.holdout_slices false)"
                )
        return {split: _subset(bank, items) for split, items in self.slices.items()}

    @property
    def voxel_spacing(self) -> float:
        """Spacing (mm) of the images: the head's crop (template mm) over ``size``; recorded in
        CycleGAN checkpoints, so ``gan-init translate`` brings an input to the same scale."""
        return field_of_view_mm(self.spatial_dims, self.skull_strip, self.axis) / self.size

    def record(self) -> dict[str, Any]:
        out = super().record()
        out["heldout"] = {
            "deformation_seeds": "split code in the generator seed's low 2 bits "
            "(train 0, val 1, test 2): no seed shared between splits",
            "slice_positions": self.slices if self.spatial_dims == 2 else None,
            "holdout_slices": self.holdout_slices and self.spatial_dims == 2,
        }
        return out


def _subset(bank: Bank, items: list[int]) -> Bank:
    index = torch.tensor(items, dtype=torch.long)
    return Bank(bank.t1[index], bank.t2[index], [bank.subjects[k] for k in items])


def _load(name: str) -> np.ndarray:
    image = nib.as_closest_canonical(nib.load(asset_path("icbm152", name)))
    return np.asarray(image.dataobj, dtype=np.float32)


def _normalize(x: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    # Robust maximum: a few bright vessels should not darken the whole image.
    return np.clip(x / np.percentile(x[foreground], 99.5), 0, 1)


def _crop(volume: np.ndarray, center: list[int], sizes: list[int]) -> np.ndarray:
    """The box of ``sizes`` around ``center``, zero-padded where it leaves the volume."""
    starts = [c - s // 2 for c, s in zip(center, sizes)]
    pad = [(max(-a, 0), max(a + s - n, 0)) for a, s, n in zip(starts, sizes, volume.shape)]
    padded = np.pad(volume, pad)
    box = tuple(slice(a + p[0], a + p[0] + s) for a, p, s in zip(starts, pad, sizes))
    return padded[box]


def _head(t1: np.ndarray, brain: np.ndarray, skull_strip: bool) -> np.ndarray:
    """The voxels the crop is centred on: the brain mask, or the head (T1 above 10% of its p99.5)."""
    return brain if skull_strip else t1 > 0.1 * np.percentile(t1, 99.5)


def _crop_side(extent: list[int], spatial_dims: int, axis: str) -> int:
    """Side (template voxels) of the square (2D, in the slice plane) or cube (3D) cut around the
    head: its largest extent, so the brain keeps its proportions."""
    if spatial_dims == 3:
        return max(extent)
    normal = AXIS_INDEX[axis]
    return max(extent[a] for a in range(3) if a != normal)


@functools.lru_cache(maxsize=8)
def field_of_view_mm(spatial_dims: int, skull_strip: bool, axis: str) -> float:
    """Side in mm of the square (2D) or cube (3D) ``icbm_bank`` resamples to ``size``: the
    voxel spacing of the images is this / ``size``."""
    brain = _load("brain_mask.nii") > 0.5
    head = brain if skull_strip else _head(_load("t1.nii"), brain, skull_strip)
    extent = [hi - lo + 1 + 2 * _MARGIN_MM for lo, hi in (mask_extent(head, a) for a in range(3))]
    zoom = float(nib.load(asset_path("icbm152", "brain_mask.nii")).header.get_zooms()[0])
    return _crop_side(extent, spatial_dims, axis) * zoom


@functools.lru_cache(maxsize=4)
def icbm_bank(
    spatial_dims: int,
    size: int,
    skull_strip: bool,
    axis: str,
    slice_range: tuple[float, float],
) -> Bank:
    """The templates at working resolution, in [0, 1]: 2D ``[N_slices, size, size]``, upright;
    3D ``[1, size, size, size]`` in RAS+ order. Cached per process."""
    image_shape_for(spatial_dims, size)
    suffix = "_brain" if skull_strip else ""
    t1, t2 = _load(f"t1{suffix}.nii"), _load(f"t2{suffix}.nii")
    brain = _load("brain_mask.nii") > 0.5
    head = _head(t1, brain, skull_strip)
    t1, t2 = _normalize(t1, head), _normalize(t2, head)
    if skull_strip:
        # The brain-extracted templates keep a faint rim outside the mask; clear it.
        t1, t2 = t1 * brain, t2 * brain
    box = [mask_extent(head, a) for a in range(3)]
    center = [(lo + hi) // 2 for lo, hi in box]
    extent = [hi - lo + 1 + 2 * _MARGIN_MM for lo, hi in box]
    side = _crop_side(extent, spatial_dims, axis)
    if spatial_dims == 3:
        images = [_crop(x, center, [side] * 3) for x in (t1, t2)]
        shape = (size,) * 3
        out = [
            F.interpolate(torch.from_numpy(x)[None, None], shape, mode="area")[0] for x in images
        ]
        return Bank(out[0], out[1], ["icbm152"])
    normal = AXIS_INDEX[axis]
    first, last = slab_bounds(brain, normal, slice_range)
    sizes = [side] * 3
    sizes[normal] = last - first + 1
    center[normal] = first + sizes[normal] // 2
    out = []
    for x in (t1, t2):
        slab = torch.from_numpy(np.moveaxis(_crop(x, center, sizes), normal, 0).copy())
        # Area averaging is the right low-pass for a ~3x reduction (no aliasing).
        out.append(upright_slices(slab, size, mode="area"))
    return Bank(out[0], out[1], ["icbm152"] * out[0].shape[0])
