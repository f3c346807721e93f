"""Image grids and PNGs for 2D slices and 3D volumes (no Lightning, no logger).

``image_grid`` turns batches of images in [-1, 1] into one uint8 picture: a 3D volume is shown
as a montage of its three mid-slices (sagittal, coronal, axial for a RAS volume), so the same
call serves both stages and both dimensionalities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def to_uint8(image: Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)):
    """Clip to ``value_range`` and map to 0..255. Any shape in, same shape out (uint8)."""
    array = image.detach().float().cpu().numpy() if isinstance(image, Tensor) else image
    lo, hi = value_range
    scaled = (np.clip(np.asarray(array, dtype=np.float32), lo, hi) - lo) / max(hi - lo, 1e-12)
    return np.round(scaled * 255.0).astype(np.uint8)


def _pad_to(image: np.ndarray, height: int, width: int, fill: float) -> np.ndarray:
    out = np.full((height, width), fill, dtype=image.dtype)
    out[: image.shape[0], : image.shape[1]] = image
    return out


def mid_slice_montage(volume: Tensor | np.ndarray, pad: int = 1, fill: float = -1.0) -> np.ndarray:
    """``[X, Y, Z]`` volume -> ``[max, X+Y+Z-ish]`` 2D float image: the three mid-slices
    (across axis 0, 1, 2) side by side, each turned so its first in-plane axis runs upwards."""
    v = volume.detach().float().cpu().numpy() if isinstance(volume, Tensor) else volume
    if v.ndim != 3:
        raise ValueError(f"mid_slice_montage expects a [X, Y, Z] volume, got shape {v.shape}")
    slices = [np.take(v, v.shape[axis] // 2, axis=axis) for axis in range(3)]
    slices = [np.rot90(s) for s in slices]  # radiological display: superior/anterior up
    height = max(s.shape[0] for s in slices)
    parts = []
    for s in slices:
        parts += [_pad_to(s, height, s.shape[1], fill), np.full((height, pad), fill)]
    return np.concatenate(parts[:-1], axis=1)


def _as_2d(image: Tensor) -> np.ndarray:
    """``[C, *S]`` -> a 2D float image (first channel; 3D as a mid-slice montage)."""
    x = image[0]
    if x.dim() == 3:
        return mid_slice_montage(x)
    if x.dim() == 2:
        return np.rot90(x.detach().float().cpu().numpy())
    raise ValueError(f"expected an image [C, H, W] or [C, X, Y, Z], got {tuple(image.shape)}")


def image_grid(
    tensors: Tensor | Sequence[Tensor],
    ncols: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    pad: int = 2,
) -> np.ndarray:
    """One uint8 picture ``[H, W]`` from batches of images.

    Args:
        tensors: one batch ``[N, C, *S]`` (tiled row by row, ``ncols`` per row, default
            ``ceil(sqrt(N))``), or a sequence of batches ``[B, C, *S]`` shown as columns (row
            ``i`` = image ``i`` of every batch; e.g. T2 | fake T1 | real T1 | reconstruction).
        value_range: intensities mapped to black and white.
        pad: pixels between cells.

    ``S`` is 2D (slices) or 3D (each volume shown as its three mid-slices).
    """
    if isinstance(tensors, Tensor):
        n = tensors.shape[0]
        ncols = ncols or max(1, math.ceil(math.sqrt(n)))
        cells = [_as_2d(tensors[i]) for i in range(n)]
    else:
        if not tensors:
            raise ValueError("image_grid: no images")
        rows = min(t.shape[0] for t in tensors)
        ncols = len(tensors)
        cells = [_as_2d(t[i]) for i in range(rows) for t in tensors]
    lo = value_range[0]
    height = max(c.shape[0] for c in cells)
    width = max(c.shape[1] for c in cells)
    nrows = math.ceil(len(cells) / ncols)
    canvas = np.full(
        (nrows * height + (nrows - 1) * pad, ncols * width + (ncols - 1) * pad), lo, np.float32
    )
    for k, cell in enumerate(cells):
        r, c = divmod(k, ncols)
        y, x = r * (height + pad), c * (width + pad)
        canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return to_uint8(canvas, value_range)


def save_png(image: np.ndarray | Tensor, path: str | Path) -> Path:
    """Write a uint8 ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB) array as PNG; makes parent dirs."""
    from PIL import Image

    array = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        array = to_uint8(array, (0.0, 1.0)) if array.max() <= 1.0 else array.astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
