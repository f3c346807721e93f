"""PNG preview of paired T1/T2 samples (what ``gan-init data check`` writes).

The pictures themselves (orientation, montage, labels, PNG) come from ``gan_init.visualize``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_init.visualize import image_grid, save_png


def preview_grid(t1: torch.Tensor, t2: torch.Tensor, min_tile: int = 128) -> np.ndarray:
    """A uint8 picture: one row per sample, columns T1 | T2 (3D: each cell the upright middle
    sagittal, coronal and axial slices). ``t1``, ``t2``: [N, 1, *S] in [-1, 1]; tiles enlarged
    (nearest neighbour) to at least ``min_tile`` pixels."""
    n = min(len(t1), len(t2))
    return image_grid(
        [t1, t2],
        titles=["T1", "T2"],
        caption=f"data preview: {n} paired samples, {t1.dim() - 2}D {tuple(t1.shape[2:])}",
        min_cell=min_tile,
    )


def save_preview(t1: torch.Tensor, t2: torch.Tensor, path: str | Path) -> Path:
    """Write ``preview_grid(t1, t2)`` as a PNG (parent folders created) and return its path."""
    return save_png(preview_grid(t1, t2), path)
