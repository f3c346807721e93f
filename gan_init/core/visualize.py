"""Pictures for people: orientation, grids, montages, labels and PNG writing, in one place.

Orientation. Volumes are kept in RAS+ voxel order (x: left->right, y: posterior->anterior,
z: inferior->superior); ``AXIS_INDEX`` names the axis normal to each plane. ``upright`` turns
RAS planes ``[..., u, v]`` into display order ``[..., rows, cols]`` (anterior at the top of an
axial slice, superior at the top of coronal and sagittal slices); the data modules apply it when
they cut 2D slices, so a 2D image ``[C, H, W]`` anywhere in the project is already upright and is
shown as it is. A 3D volume ``[C, X, Y, Z]`` is shown as its three middle slices (sagittal,
coronal, axial), each turned by ``upright`` here.

Display. Images in [-1, 1] map to 0..255 (``to_uint8``). Every cell is enlarged by an integer
factor (nearest neighbour) to at least ``min_cell`` pixels, so a 16 px image is not a speck.
``image_grid`` lays batches out as titled columns (row ``i`` = image ``i`` of every batch) or
tiles one batch; ``side_by_side`` puts titled panels next to each other; ``save_png`` writes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# RAS+ voxel order: the axis normal to each named plane.
AXIS_INDEX = {"sagittal": 0, "coronal": 1, "axial": 2}
# The order 3D montages show their planes in.
PLANES = ("sagittal", "coronal", "axial")
BACKGROUND = 0  # uint8 gray of gaps and label bands (black, as the image background)
TEXT = 255


def shape_text(shape: Sequence[int]) -> str:
    """An image shape as people write it: ``(64, 64)`` -> ``"64x64"``."""
    return "x".join(str(n) for n in shape)


def upright(planes: Tensor) -> Tensor:
    """Turn RAS-ordered planes ``[..., u, v]`` into display order ``[..., rows, cols]``.

    Rows run from the top of the picture down: anterior at the top of an axial slice, superior
    at the top of coronal and sagittal slices.
    """
    return planes.transpose(-1, -2).flip(-2)


def from_upright(planes: Tensor) -> Tensor:
    """The inverse of ``upright``: display order ``[..., rows, cols]`` -> RAS ``[..., u, v]``."""
    return planes.flip(-2).transpose(-1, -2)


def to_uint8(image: Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)):
    """Clip to ``value_range`` and map to 0..255. Any shape in, same shape out (uint8)."""
    array = image.detach().float().cpu().numpy() if isinstance(image, Tensor) else image
    lo, hi = value_range
    scaled = (np.clip(np.asarray(array, dtype=np.float32), lo, hi) - lo) / max(hi - lo, 1e-12)
    return np.round(scaled * 255.0).astype(np.uint8)


def display_planes(image: Tensor) -> list[Tensor]:
    """What a person sees of one image ``[C, *S]`` (first channel): a 2D image as it is (the data
    modules made it upright); a 3D RAS volume as its middle sagittal, coronal and axial slices,
    each upright."""
    x = image.detach().float().cpu()[0]
    if x.dim() == 2:
        return [x]
    if x.dim() == 3:
        return [upright(x.select(AXIS_INDEX[p], x.shape[AXIS_INDEX[p]] // 2)) for p in PLANES]
    raise ValueError(f"expected an image [C, H, W] or [C, X, Y, Z], got {tuple(image.shape)}")


def _hcat(parts: Sequence[np.ndarray], pad: int, fill: int = BACKGROUND) -> np.ndarray:
    height = max(p.shape[0] for p in parts)
    out = []
    for i, p in enumerate(parts):
        if i:
            out.append(np.full((height, pad), fill, np.uint8))
        block = np.full((height, p.shape[1]), fill, np.uint8)
        block[: p.shape[0]] = p
        out.append(block)
    return np.concatenate(out, axis=1)


def _vcat(parts: Sequence[np.ndarray], pad: int, fill: int = BACKGROUND) -> np.ndarray:
    return _hcat([p.T for p in parts], pad, fill).T.copy()


def cell(
    image: Tensor,
    scale: int = 1,
    value_range: tuple[float, float] = (-1.0, 1.0),
    pad: int = 2,
) -> np.ndarray:
    """One image ``[C, *S]`` as uint8 pixels, enlarged ``scale`` times (nearest neighbour);
    3D: its three upright middle slices side by side (a montage)."""
    tiles = [
        to_uint8(p, value_range).repeat(scale, 0).repeat(scale, 1) for p in display_planes(image)
    ]
    return _hcat(tiles, pad)


def mid_slice_montage(volume: Tensor, min_cell: int = 128) -> np.ndarray:
    """A ``[X, Y, Z]`` volume in [-1, 1] -> uint8 montage of its upright middle slices."""
    return cell(volume[None], scale=scale_for(volume.shape[-1], min_cell))


def scale_for(side: int, min_cell: int) -> int:
    """The integer enlargement that shows a ``side``-pixel image at least ``min_cell`` pixels."""
    return max(1, -(-int(min_cell) // max(1, int(side))))


@functools.lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont

    try:  # Pillow >= 10.1 scales its built-in font when FreeType is present
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def text_band(lines: Sequence[str], width: int, size: int = 14) -> np.ndarray:
    """A black band ``[h, width]`` with ``lines`` of white text, one under the other."""
    from PIL import Image, ImageDraw

    font = _font(size)
    line_h = size + 4
    band = Image.new("L", (max(1, width), line_h * len(lines) + 4), BACKGROUND)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((3, 2 + i * line_h), line, fill=TEXT, font=font)
    return np.asarray(band, dtype=np.uint8)


def text_width(text: str, size: int = 14) -> int:
    """Pixels ``text`` takes in the label font."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, _, right, _ = draw.textbbox((0, 0), text, font=_font(size))
    return int(right - left) + 6


def titled(panel: np.ndarray, title: str | Sequence[str] | None) -> np.ndarray:
    """``panel`` with ``title`` (a line or lines) written above it, widened to fit the text."""
    if not title:
        return panel
    lines = [title] if isinstance(title, str) else list(title)
    width = max(panel.shape[1], *(text_width(line) for line in lines))
    return _vcat([text_band(lines, width), panel], pad=0)


def image_grid(
    tensors: Tensor | Sequence[Tensor],
    ncols: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    pad: int = 2,
    *,
    titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    caption: str | Sequence[str] | None = None,
    min_cell: int = 128,
) -> np.ndarray:
    """One uint8 picture ``[H, W]`` from batches of images in ``value_range``.

    Args:
        tensors: one batch ``[N, C, *S]`` (tiled row by row, ``ncols`` per row, default
            ``ceil(sqrt(N))``), or a sequence of batches ``[B, C, *S]`` shown as columns (row
            ``i`` = image ``i`` of every batch; e.g. T2 | T2->T1 | T1 | T1->T2).
        titles: one name per column (the sequence form), written above the columns.
        row_titles: a label per row, written above each row (sequence form).
        caption: a line (or lines) written above the whole picture.
        min_cell: the smallest side, in pixels, a cell is shown at (nearest-neighbour
            enlargement by an integer factor).
        pad: pixels between cells.

    ``S`` is 2D (upright slices, shown as they are) or 3D (each volume shown as its three
    upright middle slices).
    """
    if isinstance(tensors, Tensor):
        n = tensors.shape[0]
        ncols = ncols or max(1, math.ceil(math.sqrt(n)))
        rows = [[tensors[i] for i in range(r, min(r + ncols, n))] for r in range(0, n, ncols)]
        titles = None
    else:
        if not tensors:
            raise ValueError("image_grid: no images")
        if titles is not None and len(titles) != len(tensors):
            raise ValueError(f"image_grid: {len(titles)} titles for {len(tensors)} columns")
        n_rows = min(t.shape[0] for t in tensors)
        rows = [[t[i] for t in tensors] for i in range(n_rows)]
    scale = scale_for(max(rows[0][0].shape[1:]), min_cell)
    cells = [[cell(x, scale, value_range) for x in row] for row in rows]
    width = max(c.shape[1] for row in cells for c in row)
    if titles is not None:  # a column as wide as its title
        width = max(width, *(text_width(t) for t in titles))
    lines = []
    for r, row in enumerate(cells):
        line = _hcat(
            [_hcat([c, np.zeros((c.shape[0], width - c.shape[1]), np.uint8)], 0) for c in row], pad
        )
        if row_titles is not None and r < len(row_titles):
            line = titled(line, row_titles[r])
        lines.append(line)
    grid = _vcat(lines, pad)
    if titles is not None:
        header = _hcat([text_band([t], width) for t in titles], pad)
        grid = _vcat([header, grid], pad=0)
    return titled(grid, caption)


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str] | None = None, pad: int = 8):
    """uint8 panels next to each other, each with its title above."""
    titles = titles or [None] * len(panels)
    return _hcat([titled(p, t) for p, t in zip(panels, titles)], pad)


def save_png(image: np.ndarray | Tensor, path: str | Path) -> Path:
    """Write a uint8 ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB) array as PNG; makes parent dirs."""
    from PIL import Image

    array = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        array = to_uint8(array, (0.0, 1.0)) if array.max() <= 1.0 else array.astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path
