"""``gan-init translate``: apply a CycleGAN generator to a NIfTI file.

    gan-init translate --checkpoint runs/cyclegan_2d/.../last.ckpt \\
        --input sub-01_T2w.nii.gz --output sub-01_synthT1w.nii.gz [--direction t2_to_t1]

The checkpoint is this project's CycleGAN checkpoint or a canonical PyTorch CycleGAN generator
file (``latest_net_G_B.pth``; then the direction is your word). The volume is turned to RAS (as
the data modules do), scaled to [-1, 1] by percentiles (the checkpoint's ``intensity`` metadata),
translated (2D models: slice by slice along the axis they were trained on; 3D models: the whole
volume), resampled to the model's training image shape and back where the checkpoint records it,
mapped back to the input's intensity range, turned back to the input's orientation, and written
with the input's affine and header (data type float32).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_init import visualize
from gan_init.commands.args import Parser
from gan_init.nn.ops import LINEAR_MODE
from gan_init.transfer.load import checkpoint_info, load_cyclegan_generator

DEFAULT_PERCENTILES = (0.5, 99.5)


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


def translate_file(
    checkpoint: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    direction: str = "t2_to_t1",
    device: str = "cpu",
    batch_size: int = 16,
) -> Path:
    """Translate the NIfTI ``input_path`` into ``output_path`` (see the module docstring)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: CUDA is not available on this machine")
    info: dict[str, Any] = checkpoint_info(checkpoint)
    generator = load_cyclegan_generator(checkpoint, direction, map_location=device)
    spatial_dims = generator.spec.spatial_dims
    data_info = info.get("data", {})
    intensity = info.get("intensity", {})
    slicing = data_info.get("slicing", {})
    axis = int(slicing.get("axis", 2))
    image_shape = data_info.get("image_shape")
    if image_shape is not None and len(image_shape) != spatial_dims:
        image_shape = None

    image = nib.load(str(input_path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{input_path}: a volume of shape {data.shape}; expected 3D [X, Y, Z]")
    canonical, ornt = to_ras(data, image.affine)
    if "percentile_high" in intensity:  # fixed low end, percentile of the foreground
        percentiles = (0.0, float(intensity["percentile_high"]))
        scaled, lo_hi = percentile_scale(
            canonical, percentiles, low=intensity.get("low"),
            foreground=intensity.get("foreground") == "nonzero",
        )  # fmt: skip
    else:
        percentiles = intensity.get("percentiles", DEFAULT_PERCENTILES)
        scaled, lo_hi = percentile_scale(canonical, percentiles)
    translated = apply_generator(
        generator, scaled, spatial_dims, axis=axis, image_shape=image_shape,
        batch_size=batch_size, device=device, upright=slicing.get("display") == "upright",
    )  # fmt: skip
    result = from_ras(percentile_unscale(translated, lo_hi), ornt)
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    out = nib.Nifti1Image(result.astype(np.float32), image.affine, header=header)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, str(output_path))
    return output_path


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = translate_file(
        args.checkpoint, args.input, args.output, direction=args.direction,
        device=args.device, batch_size=args.batch_size,
    )  # fmt: skip
    print(f"wrote {path}")
    return 0
