"""Where an image is cut and in which shape: image shapes, the 2D slab, upright slices, ranges.

Volumes are kept in RAS+ voxel order; ``AXIS_INDEX`` (``gan_init.core.visualize``) names each
plane's axis, and 2D slices are turned upright (display order) when cut. The 2D slab is a fraction
(``slice_range``) of the extent of a mask (head or brain) along the slicing axis; both data modules
and ``data_modules.preprocessing`` cut it the same way. Images are held in [0, 1] and served in
[-1, 1] (``to_signed``; ``to_unit`` back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Orientation lives with the pictures; re-exported for the data modules, which cut slices upright.
from gan_init.core.visualize import AXIS_INDEX, upright  # noqa: F401

AXES = ("axial", "coronal", "sagittal")
DEFAULT_SIZE = {2: 64, 3: 32}


def image_shape_for(spatial_dims: int, size: int | None) -> tuple[int, ...]:
    """``(size,) * spatial_dims``, with the default size (64 in 2D, 32 in 3D) for None."""
    if spatial_dims not in DEFAULT_SIZE:
        raise ValueError(f"spatial_dims={spatial_dims!r} must be 2 or 3")
    size = DEFAULT_SIZE[spatial_dims] if size is None else int(size)
    if size < 4:
        raise ValueError(f"size={size} is too small (at least 4)")
    return (size,) * spatial_dims


def check_slice_range(slice_range: tuple[float, float]) -> tuple[float, float]:
    """``slice_range`` (fractions of an extent, low and high) as floats, checked."""
    lo, hi = slice_range
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"slice_range={slice_range!r} must satisfy 0 <= low <= high <= 1")
    return float(lo), float(hi)


def mask_extent(mask: np.ndarray | torch.Tensor, axis: int) -> tuple[int, int]:
    """First and last index along ``axis`` where the 3D boolean ``mask`` has any voxel (the
    whole axis when it has none)."""
    others = tuple(a for a in range(3) if a != axis)
    hit = np.flatnonzero(np.asarray(mask).any(axis=others))
    return (int(hit[0]), int(hit[-1])) if len(hit) else (0, mask.shape[axis] - 1)


def slab_bounds(
    mask: np.ndarray | torch.Tensor, axis: int, slice_range: tuple[float, float]
) -> tuple[int, int]:
    """First and last slice (inclusive) along ``axis`` of the 2D slab: the fraction
    ``slice_range`` of the extent of ``mask`` (head or brain) along that axis."""
    lo, hi = mask_extent(mask, axis)
    first = lo + round(slice_range[0] * (hi - lo))
    last = max(lo + round(slice_range[1] * (hi - lo)), first)
    return first, last


def upright_slices(slab: torch.Tensor, size: int, **resize: Any) -> torch.Tensor:
    """Slices ``[N, u, v]`` in RAS+ plane order -> ``[N, size, size]`` in display order: resized
    (``F.interpolate(..., **resize)``) when not already ``size``, then turned upright."""
    if tuple(slab.shape[1:]) != (size, size):
        slab = F.interpolate(slab[:, None], (size, size), **resize)[:, 0]
    return upright(slab).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1) / 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (float32)."""
    return (x * 2 - 1).float()
