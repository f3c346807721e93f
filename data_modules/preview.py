"""PNG preview grids of paired T1/T2 samples (what ``gan-init data check`` writes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_modules.common import AXIS_INDEX, upright


def planes(x: torch.Tensor) -> list[torch.Tensor]:
    """Display planes of one image [1, *S] in [-1, 1]: the image itself in 2D (already upright);
    the middle axial, coronal and sagittal slices of a RAS+ volume in 3D."""
    image = x[0]
    if image.ndim == 2:
        return [image]
    out = []
    for name in ("axial", "coronal", "sagittal"):
        axis = AXIS_INDEX[name]
        out.append(upright(image.select(axis, image.shape[axis] // 2)))
    return out


def preview_grid(t1: torch.Tensor, t2: torch.Tensor, min_tile: int = 128) -> np.ndarray:
    """A uint8 grid [H, W]: one column per sample, rows T1 and T2 (per plane in 3D).

    ``t1``, ``t2``: [N, 1, *S] in [-1, 1]. Tiles are enlarged by an integer factor (nearest
    neighbour) to at least ``min_tile`` pixels, with a 2-pixel gap between tiles.
    """
    rows = []
    per_sample = [(planes(a), planes(b)) for a, b in zip(t1, t2)]
    for p in range(len(per_sample[0][0])):
        for which in (0, 1):
            rows.append([s[which][p] for s in per_sample])
    tile = rows[0][0].shape
    scale = max(1, -(-min_tile // max(tile)))
    gap = 2
    h, w = tile[0] * scale, tile[1] * scale
    grid = np.zeros((len(rows) * (h + gap) - gap, len(rows[0]) * (w + gap) - gap), np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            pixels = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
            pixels = pixels.repeat(scale, 0).repeat(scale, 1)
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = pixels
    return grid


def save_preview(t1: torch.Tensor, t2: torch.Tensor, path: str | Path) -> Path:
    """Write ``preview_grid(t1, t2)`` as a PNG (parent folders created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_grid(t1, t2)).save(path)
    return path
