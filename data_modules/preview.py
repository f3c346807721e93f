"""PNG preview grids of paired T1/T2 samples (what ``gan-init data check`` writes).

``save_sections`` writes one labelled picture of several splits: per split a title line, then
one column per sample and one row per modality (and, in 3D, per plane), each row labelled.

The pictures' orientation, uint8 mapping and PNG writing come from ``gan_init.core.visualize``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gan_init.core.visualize import AXIS_INDEX, image_grid, save_png, to_uint8, upright

PLANES = ("axial", "coronal", "sagittal")


def planes(x: torch.Tensor) -> list[torch.Tensor]:
    """Display planes of one image [1, *S] in [-1, 1]: the image itself in 2D (already upright);
    the middle axial, coronal and sagittal slices of a RAS+ volume in 3D."""
    image = x[0]
    if image.ndim == 2:
        return [image]
    out = []
    for name in PLANES:
        axis = AXIS_INDEX[name]
        out.append(upright(image.select(axis, image.shape[axis] // 2)))
    return out


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


def _pixels(image: torch.Tensor, scale: int) -> np.ndarray:
    return to_uint8(image).repeat(scale, 0).repeat(scale, 1)


def save_sections(
    sections: list[tuple[str, torch.Tensor, torch.Tensor]],
    path: str | Path,
    min_tile: int = 96,
) -> Path:
    """Write a labelled PNG of several splits and return its path (parent folders created).

    ``sections``: ``(title, t1, t2)`` with ``t1``, ``t2`` [N, 1, *S] in [-1, 1] (N may differ
    between sections, and be 0: the section then says so). Rows are labelled ``T1``/``T2`` in
    2D and ``T1 axial`` ... ``T2 sagittal`` in 3D; images are upright (``planes``).
    """
    font = ImageFont.load_default(14)
    gap, label_w, title_h = 4, 92, 22
    first = next((t1 for _, t1, _ in sections if len(t1)), None)
    tile = planes(first[0])[0].shape if first is not None else (min_tile, min_tile)
    scale = max(1, -(-min_tile // max(tile)))
    h, w = tile[0] * scale, tile[1] * scale
    columns = max([len(t1) for _, t1, _ in sections] + [1])
    n_planes = len(planes(first[0])) if first is not None else 1
    row_names = ["T1", "T2"]
    if n_planes > 1:  # T1 and T2 of one plane next to each other: easier to compare
        row_names = [f"{m} {plane}" for plane in PLANES for m in ("T1", "T2")]
    block_h = title_h + len(row_names) * (h + gap)
    width = label_w + columns * (w + gap)
    canvas = Image.new("L", (width, len(sections) * (block_h + gap)), 255)
    draw = ImageDraw.Draw(canvas)
    for s, (title, t1, t2) in enumerate(sections):
        top = s * (block_h + gap)
        draw.text((4, top + 3), title if len(t1) else f"{title}: no images", fill=0, font=font)
        for r, name in enumerate(row_names):
            y = top + title_h + r * (h + gap)
            draw.text((4, y + h // 2 - 8), name, fill=0, font=font)
            modality, plane = (name.split(" ") + [""])[:2]
            batch = t1 if modality == "T1" else t2
            p = PLANES.index(plane) if plane else 0
            for c, image in enumerate(batch):
                tile_image = Image.fromarray(_pixels(planes(image)[p], scale))
                canvas.paste(tile_image, (label_w + c * (w + gap), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
