"""``gan-init data check SOURCE``: load a dataset, say what was found, write a PNG preview.

SOURCE is ``icbm`` (the built-in templates) or a folder of NIfTI subjects. The preview grid has
one column per validation sample and rows T1, T2 (per plane in 3D: axial, coronal, sagittal).
"""

from __future__ import annotations

import argparse
import sys

import torch

from data_modules.common import DataError, T1T2DataModule
from gan_init.commands.args import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="gan-init data", description=__doc__)
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="load a dataset, print a summary, write a PNG preview")
    c.add_argument("source", help="'icbm' or a folder of T1/T2 NIfTI subjects")
    c.add_argument("--dims", type=int, choices=[2, 3], default=2, help="2D slices or 3D volumes")
    c.add_argument("--size", type=int, default=None, help="image side (default 64 2D, 32 3D)")
    c.add_argument("--out", default="data_preview.png", help="PNG preview path")
    c.add_argument("--n", type=int, default=8, help="samples in the preview")
    c.add_argument("--axis", default="axial", help="2D slice plane: axial, coronal, sagittal")
    c.add_argument("--with-skull", action="store_true", help="icbm: whole head, not brain only")
    c.add_argument("--layout", default="ixi", help="folder layout: ixi, brats or custom")
    c.add_argument(
        "--t1-pattern", help="glob of T1 files with {subject}, e.g. '{subject}-T1.nii.gz'"
    )
    c.add_argument("--t2-pattern", help="glob of T2 files with {subject}")
    c.add_argument("--mask-pattern", help="glob of brain masks with {subject} (optional)")
    c.add_argument("--spacing", type=float, help="target spacing in mm (default fov/size)")
    c.add_argument("--fov-mm", type=float, help="field of view in mm (default by layout)")
    c.add_argument("--cache-dir", help="preprocessing cache (default $GAN_INIT_DATA/nifti-cache)")
    c.add_argument("--skip-bad-subjects", action="store_true", help="warn and skip, not stop")
    c.add_argument("--seed", type=int, default=0)
    return p


def build(args: argparse.Namespace) -> T1T2DataModule:
    """The data module that ``args`` describe."""
    common = dict(
        spatial_dims=args.dims, size=args.size, axis=args.axis, seed=args.seed, batch_size=args.n
    )
    if args.source == "icbm":
        from data_modules import IcbmDataModule

        return IcbmDataModule(skull_strip=not args.with_skull, val_samples=args.n, **common)
    from data_modules import NiftiFolderDataModule

    return NiftiFolderDataModule(
        args.source,
        layout=args.layout,
        t1_pattern=args.t1_pattern,
        t2_pattern=args.t2_pattern,
        mask_pattern=args.mask_pattern,
        spacing=args.spacing,
        fov_mm=args.fov_mm,
        cache_dir=args.cache_dir,
        skip_bad_subjects=args.skip_bad_subjects,
        **common,
    )


def _range(x: torch.Tensor) -> str:
    return f"[{float(x.min()):.2f}, {float(x.max()):.2f}] mean {float(x.mean()):.2f}"


def check(args: argparse.Namespace) -> int:
    from data_modules.preview import save_preview

    dm = build(args)
    dm.setup()
    print(f"source:      {args.source} ({type(dm).__name__}, {args.dims}D)")
    manifest = getattr(dm, "manifest", None)
    if manifest:
        kept = manifest["kept"]
        print(f"subjects:    {len(kept)} with T1 and T2 (pairs)")
        for key in ("t1", "t2"):
            shapes = sorted({tuple(s["info"][key][0]) for s in kept})
            spacings = sorted({tuple(s["info"][key][1]) for s in kept})
            print(f"  {key} on disk: shapes {shapes[:4]}, spacing (mm) {spacings[:4]}")
        print(f"preprocessed: spacing {dm.prep.spacing:.2f} mm, field of view {dm.prep.fov_mm} mm")
        print(f"cache:       {dm.cache_path()}")
    else:
        print("subjects:    one brain (ICBM 2009c), a stream of warped T1/T2 pairs")
    if dm.endless:
        print(f"  template: {len(dm.bank('train'))} slice(s)/volume(s) at working resolution")
        print(
            f"  train: {dm.samples_per_epoch} samples per epoch; val/test: {dm.eval_samples} fixed"
        )
    else:
        for split in ("train", "val", "test"):
            bank = dm.bank(split)
            print(f"  {split:<5}: {len(bank)} images from {len(set(bank.subjects))} subject(s)")
    print(f"image shape: {dm.image_shape} x {dm.channels} channel")
    split = "val" if len(dm.bank("val")) else "train"
    n = args.n if dm.endless else min(args.n, len(dm.bank(split)))
    t1 = dm.real_images(n, split, "t1")
    t2 = dm.real_images(n, split, "t2")
    print(f"T1 ({split}):    {_range(t1)}")
    print(f"T2 ({split}):    {_range(t2)}")
    path = save_preview(t1, t2, args.out)
    print(f"preview:     {path} (rows: samples; columns: T1 | T2)")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return check(args)
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"gan-init data: {err}", file=sys.stderr)
        return 1
