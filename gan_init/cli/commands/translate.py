"""``gan-init translate``: apply a CycleGAN generator to a NIfTI file.

    gan-init translate --checkpoint runs/cyclegan_2d/.../last.ckpt \\
        --input sub-01_T2w.nii.gz --output sub-01_synthT1w.nii.gz [--direction t2_to_t1]

The checkpoint is this project's CycleGAN checkpoint or a canonical PyTorch CycleGAN generator
file (``latest_net_G_B.pth``; then the direction is your word). The input goes through the
training data's preprocessing chain (``data_modules.preprocessing``): turned to RAS, resampled to
the training voxel spacing (2D: in the slice plane, every input slice kept), cropped or padded to the
training field of view (image shape x spacing, both recorded in the checkpoint's ``data``)
centred on the head, and scaled to [-1, 1] by the checkpoint's ``intensity`` rule. It is
translated (2D models: slice by slice along the axis they were trained on; 3D: the whole
volume), mapped back to the input's intensity range and written on the input's voxel grid with
its affine and header (``--grid training``: on the training grid, with that grid's affine),
float32; 0 outside the field of view. A head that does not fit the field of view (wrong voxel
size in the affine, a whole body) is refused in one line. A checkpoint without a recorded
spacing (a canonical file) translates the volume as it is, at its own resolution.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio
from torch import Tensor, nn

from data_modules.preprocessing import (
    crop_to_head,
    percentile_range,
    read_volume,
    resample,
    rescale,
)
from gan_init.cli.commands.args import Parser
from gan_init.core import visualize
from gan_init.core.errors import UsageError
from gan_init.core.registry import check_choice
from gan_init.nn.ops import LINEAR_MODE
from gan_init.transfer.load import checkpoint_info, load_cyclegan_generator

DEFAULT_PERCENTILES = (0.5, 99.5)
GRIDS = ("input", "training")
# The input's head must span this fraction of the training field of view (its largest side).
FOV_FIT = (0.5, 1.25)


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[X, Y, Z]`` voxels -> closest RAS voxel order; returns it and the orientation used."""
    ornt = nib.orientations.io_orientation(affine)
    return nib.orientations.apply_orientation(data, ornt), ornt


def from_ras(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Undo :func:`to_ras` (``ornt`` as it returned)."""
    ras = nib.orientations.axcodes2ornt("RAS")
    back = nib.orientations.ornt_transform(ras, ornt)
    return nib.orientations.apply_orientation(data, back)


def percentile_scale(
    data: np.ndarray,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    *,
    low: float | None = None,
    foreground: bool = False,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map the ``percentiles`` of ``data`` to -1 and 1, clip; returns it and ``(lo, hi)``.

    ``low``: a fixed value for -1 instead of the low percentile; ``foreground``: percentiles of
    the voxels above ``low`` (or non-zero) only, as the data modules scale the templates.
    """
    values = data
    if foreground:
        values = data[data > (0.0 if low is None else low)]
        values = values if values.size else data
    lo, hi = (float(v) for v in np.percentile(values, list(percentiles)))
    lo = lo if low is None else float(low)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip(2.0 * (data - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32), (lo, hi)


def percentile_unscale(data: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`percentile_scale` (up to its clipping)."""
    lo, hi = lo_hi
    return ((data + 1.0) / 2.0 * (hi - lo) + lo).astype(np.float32)


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = LINEAR_MODE[x.dim() - 2]
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


@torch.no_grad()
def apply_generator(
    generator: nn.Module,
    volume: np.ndarray,
    spatial_dims: int,
    *,
    axis: int = 2,
    image_shape: Sequence[int] | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    upright: bool = False,
) -> np.ndarray:
    """Translate a ``[X, Y, Z]`` volume in [-1, 1]; returns ``[X, Y, Z]`` in [-1, 1].

    2D: slices along ``axis`` in batches of ``batch_size``; 3D: the whole volume. With
    ``image_shape`` each slice/volume is resampled to it for the generator and back after.
    ``upright``: 2D slices are turned to display order (as the model saw them) and back.
    """
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    if spatial_dims == 3:
        batch = x[None, None].to(device)
        size = batch.shape[2:]
        out = generator(_resize(batch, image_shape or size))
        return _resize(out, size)[0, 0].clamp(-1, 1).cpu().numpy()
    slices = x.movedim(axis, 0).unsqueeze(1)  # [N, 1, u, v] RAS planes
    if upright:  # the slices as the data modules cut them
        slices = visualize.upright(slices)
    size = slices.shape[2:]
    outs = []
    for chunk in slices.split(batch_size):
        chunk = chunk.to(device)
        out = generator(_resize(chunk, image_shape or size))
        outs.append(_resize(out, size).clamp(-1, 1).cpu())
    out = torch.cat(outs)
    if upright:
        out = visualize.from_upright(out)
    return out[:, 0].movedim(0, axis).numpy()


@dataclass(frozen=True)
class TrainingGrid:
    """The images a CycleGAN trained on: ``shape`` (the checkpoint's ``image_shape``; 2D: the
    slice as shown) of ``spacing`` mm, 2D slices cut along RAS ``axis`` (``upright``: shown
    turned, as the data modules cut them)."""

    shape: tuple[int, ...]
    spacing: float
    axis: int = 2
    upright: bool = False

    def ras_shape(self, volume_shape: Sequence[int]) -> list[int]:
        """The RAS box ``[X, Y, Z]`` of the training field of view; 2D: every slice kept."""
        if len(self.shape) == 3:
            return list(self.shape)
        plane = list(reversed(self.shape)) if self.upright else list(self.shape)
        box = list(volume_shape)
        for a, n in zip([a for a in range(3) if a != self.axis], plane):
            box[a] = n
        return box

    def describe(self) -> str:
        shape = visualize.shape_text(self.shape)
        fov = "x".join(f"{n * self.spacing:.0f}" for n in self.shape)
        kind = "slices" if len(self.shape) == 2 else "volumes"
        return f"{fov} mm ({shape} {kind} of {self.spacing:.3g} mm voxels)"


def training_grid(info: dict[str, Any], spatial_dims: int) -> TrainingGrid | None:
    """The checkpoint's training grid (``data.image_shape`` and ``data.voxel_spacing``), or None
    when it records no spacing (a canonical file, or a checkpoint of an older version)."""
    data = info.get("data", {})
    shape, spacing = data.get("image_shape"), data.get("voxel_spacing")
    if shape is None or spacing is None or len(shape) != spatial_dims:
        return None
    slicing = data.get("slicing", {})
    return TrainingGrid(
        tuple(int(n) for n in shape), float(spacing), int(slicing.get("axis", 2)),
        slicing.get("display") == "upright",
    )  # fmt: skip


def _head_extent_mm(fg: Tensor, spacing: Sequence[float]) -> list[float]:
    """Extent in mm of the foreground ``[1, X, Y, Z]`` along each axis."""
    out = []
    for a in range(3):
        hit = torch.nonzero(fg[0].movedim(a, 0).flatten(1).any(1))
        out.append(float((hit[-1] - hit[0] + 1) * spacing[a]) if len(hit) else 0.0)
    return out


def to_training_grid(
    image: tio.ScalarImage, grid: TrainingGrid, where: str
) -> tuple[tio.ScalarImage, Tensor]:
    """The input through the training chain (``data_modules.preprocessing``): RAS,
    resampled to the training spacing (2D: in the slice plane; the input's slices are kept),
    cropped or padded to the training field of view centred on the head (voxels above the mean).
    Returns the image (TorchIO keeps its affine) and the head mask ``[1, X, Y, Z]``.

    Raises ``UsageError`` when the head does not fit that field of view (0.5 to 1.25 of it).
    """
    spacing = [grid.spacing] * 3
    if len(grid.shape) == 2:
        spacing[grid.axis] = float(tio.ToCanonical()(image).spacing[grid.axis])
    subject = resample(tio.Subject(image=image), spacing)
    fg = subject["fg"].data
    used = range(3) if len(grid.shape) == 3 else [a for a in range(3) if a != grid.axis]
    box = grid.ras_shape(subject["image"].shape[1:])
    extent = _head_extent_mm(fg, spacing)
    ratio = max(extent[a] / (box[a] * grid.spacing) for a in used)
    if not FOV_FIT[0] <= ratio <= FOV_FIT[1]:
        spans = " x ".join(f"{extent[a]:.0f}" for a in used)
        hint = (
            "crop it to the head (no neck or body) and skull-strip it if the training data was"
            if ratio > FOV_FIT[1]
            else "is the voxel size in its affine right "
            f"({'x'.join(f'{z:g}' for z in subject['image'].spacing)} mm after resampling)?"
        )
        raise UsageError(
            f"{where}: its head (voxels above the mean) spans {spans} mm but the CycleGAN was "
            f"trained on a field of view of {grid.describe()}: give --input a 3D volume of one "
            f"head whose affine holds the true voxel size (any spacing, orientation and "
            f"margin); {hint}"
        )
    subject = crop_to_head(subject, box)
    return subject["image"], subject["fg"].data > 0


def scale_intensity(
    data: np.ndarray, fg: np.ndarray, intensity: dict[str, Any]
) -> tuple[np.ndarray, tuple[float, float]]:
    """Scale to [-1, 1] by the checkpoint's ``intensity`` rule; returns it and ``(lo, hi)``."""
    if "percentile_high" in intensity:  # ICBM: fixed low end, percentile of the non-zero voxels
        return percentile_scale(
            data, (0.0, float(intensity["percentile_high"])), low=intensity.get("low"),
            foreground=intensity.get("foreground") == "nonzero",
        )  # fmt: skip
    percentiles = tuple(intensity.get("percentiles", DEFAULT_PERCENTILES))
    if not fg.any():
        return percentile_scale(data, percentiles)
    # NiftiFolderDataModule's scaling (data_modules.preprocessing.rescale); (lo, hi): its cutoff.
    image = tio.ScalarImage(tensor=torch.from_numpy(data)[None])
    subject = tio.Subject(image=image, fg=tio.LabelMap(tensor=torch.from_numpy(fg)[None]))
    subject = rescale(subject, percentiles)
    lo, hi = percentile_range(data[fg], percentiles)
    return subject["image"].data[0].numpy().astype(np.float32), (lo, max(hi, lo + 1e-6))


def translate_file(
    checkpoint: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    direction: str = "t2_to_t1",
    device: str = "cpu",
    batch_size: int = 16,
    grid: str = "input",
) -> Path:
    """Translate the NIfTI ``input_path`` into ``output_path`` (see the module docstring).

    ``grid``: ``input`` writes the input's voxel grid and affine; ``training`` the training grid
    (the cropped, resampled field of view) with its own affine.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: CUDA is not available on this machine")
    check_choice("grid", grid, GRIDS)
    info: dict[str, Any] = checkpoint_info(checkpoint)
    generator = load_cyclegan_generator(checkpoint, direction, map_location=device)
    spatial_dims = generator.spec.spatial_dims
    intensity = info.get("intensity", {})
    slicing = info.get("data", {}).get("slicing", {})
    where = f"--input {input_path}"
    source = read_volume(Path(input_path), "--input")
    header = nib.load(str(input_path)).header.copy()
    header.set_data_dtype(np.float32)
    target = training_grid(info, spatial_dims)
    if target is None:  # no recorded spacing: the volume is taken as it is
        canonical = tio.ToCanonical()(source)
        shape = info.get("data", {}).get("image_shape")
        _check_native_shape(canonical, shape, spatial_dims, int(slicing.get("axis", 2)), where)
        fg = np.zeros(canonical.shape[1:], bool)
        axis, upright = int(slicing.get("axis", 2)), slicing.get("display") == "upright"
    else:
        canonical, fg_t = to_training_grid(source, target, where)
        fg = fg_t[0].numpy()
        axis, upright = target.axis, target.upright
    data = canonical.data[0].numpy().astype(np.float32)
    scaled, lo_hi = scale_intensity(data, fg, intensity)
    translated = apply_generator(
        generator, scaled, spatial_dims, axis=axis, batch_size=batch_size, device=device,
        upright=upright,
    )  # fmt: skip
    result = tio.ScalarImage(
        tensor=torch.from_numpy(percentile_unscale(translated, lo_hi))[None],
        affine=canonical.affine,
    )
    if grid == "input":
        result = tio.Resample(source)(result)  # onto the input's voxels (0 outside the view)
        out = nib.Nifti1Image(result.data[0].numpy(), source.affine, header=header)
    else:
        out = nib.Nifti1Image(result.data[0].numpy(), result.affine)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, str(output_path))
    return output_path


def _check_native_shape(
    image: tio.ScalarImage, shape: Sequence[int] | None, spatial_dims: int, axis: int, where: str
) -> None:
    """Without a recorded spacing, the input must already be at the training image shape."""
    if shape is None or len(shape) != spatial_dims:
        return
    have = list(image.shape[1:])
    if spatial_dims == 2:
        have = [n for a, n in enumerate(have) if a != axis]
    if sorted(have) != sorted(int(n) for n in shape):
        wanted = visualize.shape_text(shape)
        raise UsageError(
            f"{where}: the checkpoint records its training image shape ({wanted}) but no voxel "
            f"spacing (trained before it was recorded), so translate cannot crop and resample to "
            f"its field of view: give --input a volume already preprocessed as the training data "
            f"({wanted} {'slices' if spatial_dims == 2 else 'voxels'}, got "
            f"{visualize.shape_text(image.shape[1:])}), or retrain the CycleGAN"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gan-init translate",
        description="Apply a CycleGAN generator to a NIfTI file (2D slice by slice, or 3D).",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="gan-init CycleGAN .ckpt or canonical G .pth"
    )
    parser.add_argument("--input", required=True, help="input NIfTI (.nii or .nii.gz)")
    parser.add_argument("--output", required=True, help="output NIfTI path")
    parser.add_argument(
        "--direction",
        default="t2_to_t1",
        choices=["t2_to_t1", "t1_to_t2"],
        help="which generator (canonical files: G_B is t2_to_t1 when A = T1, B = T2)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=16, help="slices per batch (2D)")
    parser.add_argument(
        "--grid", default="input", choices=list(GRIDS),
        help="output voxels: the input's grid and affine, or the training grid (the cropped, "
        "resampled field of view the generator saw) with its affine",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = translate_file(
        args.checkpoint, args.input, args.output, direction=args.direction,
        device=args.device, batch_size=args.batch_size, grid=args.grid,
    )  # fmt: skip
    print(f"wrote {path}")
    return 0
