"""``gan-init data check SOURCE``: load a dataset, check every split a run uses, write a preview.

SOURCE is ``icbm`` (the built-in templates) or a folder of NIfTI subjects. Every split a run
would touch is built and checked (train, or with ``--roles`` the CycleGAN and noise-GAN roles;
validation; test): data that cannot train stops with one line naming the file and the fix. The
preview PNG (default ``runs/data_check/<name>.png``) has one labelled block per split: a column
per sample, rows T1 and T2 (per plane in 3D: axial, coronal, sagittal). For a folder, the
subjects of each split are written next to it (``<name>.subjects.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_modules.base import DataError, T1T2DataModule
from data_modules.geometry import to_signed
from data_modules.stream import MODALITIES, draw, sample_seed
from gan_init.cli.commands.args import Parser


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="gan-init data", description=__doc__)
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="load a dataset, check its splits, write a PNG preview")
    c.add_argument("source", help="'icbm' or a folder of T1/T2 NIfTI subjects")
    c.add_argument("--dims", type=int, choices=[2, 3], default=2, help="2D slices or 3D volumes")
    c.add_argument("--size", type=int, default=None, help="image side (default 64 2D, 32 3D)")
    c.add_argument(
        "--out", default=None, help="PNG preview path (default runs/data_check/<name>.png)"
    )
    c.add_argument("--n", type=int, default=8, help="samples per split in the preview")
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
    c.add_argument(
        "--roles", action="store_true", help="folder: split subjects into CycleGAN/noise roles"
    )
    c.add_argument("--val-fraction", type=float, default=0.1, help="folder: validation subjects")
    c.add_argument("--test-fraction", type=float, default=0.1, help="folder: test subjects")
    c.add_argument("--split-seed", type=int, default=0, help="seed of the subject split/roles")
    c.add_argument("--seed", type=int, default=0, help="seed of the train stream (default 0)")
    return p


# Flags that are the data module's argument of the same name: of both sources, of a folder.
SHARED_FLAGS = ("size", "axis", "seed", "split_seed")
FOLDER_FLAGS = (
    "layout",
    "t1_pattern",
    "t2_pattern",
    "mask_pattern",
    "spacing",
    "fov_mm",
    "cache_dir",
    "skip_bad_subjects",
    "roles",
    "val_fraction",
    "test_fraction",
)


def _same_named(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """``{name: args.name}`` for each of ``names``."""
    return {name: getattr(args, name) for name in names}


def build(args: argparse.Namespace) -> T1T2DataModule:
    """The data module that ``args`` describe."""
    common = dict(spatial_dims=args.dims, batch_size=args.n, **_same_named(args, SHARED_FLAGS))
    if args.source == "icbm":
        from data_modules import IcbmDataModule

        return IcbmDataModule(skull_strip=not args.with_skull, val_samples=args.n, **common)
    from data_modules import NiftiFolderDataModule

    dm = NiftiFolderDataModule(args.source, **_same_named(args, FOLDER_FLAGS), **common)
    # Errors name the flags typed here, not the YAML keys.
    dm.fixes = {"skip_bad_subjects": "--skip-bad-subjects", "roles": "leave out --roles"}
    return dm


def default_out(args: argparse.Namespace, dm: T1T2DataModule) -> Path:
    """``runs/data_check/<source>-<dims>d-<size>.png``."""
    name = "icbm" if args.source == "icbm" else Path(args.source).expanduser().resolve().name
    return Path("runs") / "data_check" / f"{name}-{dm.spatial_dims}d-{dm.size}.png"


def _range(x: torch.Tensor) -> str:
    if not len(x):
        return "no images"
    return f"[{float(x.min()):.2f}, {float(x.max()):.2f}] mean {float(x.mean()):.2f}"


def split_samples(dm: T1T2DataModule, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` paired (T1, T2) samples [n, 1, *S] of one split as a run sees it: warped draws
    from the split's own seeds (ICBM stream), or the split's images in a seeded order."""
    bank = dm.splits_in_use()[split]
    if dm.endless:
        if split in ("val", "test"):
            pairs = [dm.pair_dataset(split)[k] for k in range(n)]
        else:  # train: paired draws from the train seeds (a run draws T1 and T2 apart)
            seeds = [sample_seed(dm.seed, "train", k, "pair") for k in range(n)]
            pairs = [draw(bank, None, MODALITIES, s, dm.augmentation, "train") for s in seeds]
    else:
        seed = dm.seed if split not in ("val", "test") else dm.split_seed
        items = np.random.default_rng([seed & 0xFFFFFFFF, len(bank)]).permutation(len(bank))
        pairs = [
            {m: to_signed(getattr(bank, m)[int(i)][None]) for m in MODALITIES} for i in items[:n]
        ]
    if not pairs:
        empty = torch.zeros(0, 1, *dm.image_shape)
        return empty, empty.clone()
    return tuple(torch.stack([p[m] for p in pairs]) for m in MODALITIES)  # type: ignore[return-value]


def _blank(bank_images: torch.Tensor) -> int:
    """Images in a bank [N, *S] with no contrast (every pixel the same)."""
    flat = bank_images.flatten(1)
    return int((flat.amax(1) == flat.amin(1)).sum()) if len(flat) else 0


def check(args: argparse.Namespace) -> int:
    from data_modules.preview import save_sections

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
        for bad in dm.skipped:
            print(f"  skipped {bad['subject']}: {bad['reason']}")
        print(f"preprocessed: spacing {dm.prep.spacing:.2f} mm, field of view {dm.prep.fov_mm} mm")
        print(f"cache:       {dm.cache_path()}")
    else:
        print("subjects:    one brain (ICBM 2009c), a stream of warped T1/T2 pairs")
        print(
            f"  train: {dm.samples_per_epoch} samples per epoch; val/test: {dm.eval_samples} fixed"
        )
    print(f"image shape: {dm.image_shape} x {dm.channels} channel; split seed {dm.split_seed}")
    sections = []
    for split, bank in dm.splits_in_use().items():
        what = f"{len(bank)} images from {len(set(bank.subjects))} subject(s)"
        if dm.endless:
            kind = "slices" if dm.spatial_dims == 2 else "volume"
            what = f"{len(bank)} template {kind}, a new warp per draw"
        blank = _blank(bank.t1) + _blank(bank.t2)
        if blank:
            what += f"; {blank} image(s) with no contrast"
        n = args.n if dm.endless else min(args.n, len(bank))
        t1, t2 = split_samples(dm, split, n)
        print(f"  {split:<8}: {what}; T1 {_range(t1)}, T2 {_range(t2)}")
        if not len(bank) and split in ("train", "cyclegan", "noise"):
            raise DataError(f"the {split} split of {args.source} is empty: nothing to train on")
        sections.append((f"{split}: {what}", t1, t2))
    out = Path(args.out) if args.out else default_out(args, dm)
    path = save_sections(sections, out)
    print(f"preview:     {path} (one block per split; columns: samples; rows: T1, T2)")
    if manifest:
        record = path.with_suffix(".subjects.json")
        record.write_text(json.dumps(dm.subjects_record(), indent=1) + "\n")
        print(f"subjects:    {record} (which subjects went where)")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return check(args)
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"gan-init data: {err}", file=sys.stderr)
        return 2  # an input error, like every other command's
