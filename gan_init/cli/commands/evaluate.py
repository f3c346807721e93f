"""``gan-init evaluate``: the evaluation metrics of a noise-GAN checkpoint, as JSON.

    gan-init evaluate --checkpoint runs/x/last.ckpt --metrics swd,fid,kid,pr,msssim,memo \\
        --n 256 --out metrics.json

Samples ``--n`` images from the EMA generator (at the checkpoint's current resolution) and
compares them with ``--n-real`` fixed real test images (the training evaluation's reference,
resized to that resolution) of the data ``--data``: ``icbm`` (the built-in ICBM data module, noise mode) or a YAML config whose ``data``
section (or the whole file) is ``class_path``/``init_args`` of a data module with
``real_images(n, split)``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gan_init.callbacks.evaluation import REFERENCE_SPLIT, resize_to
from gan_init.cli.commands.args import Parser, add_device_option, resolve_device
from gan_init.core.assets import cache_dir
from gan_init.core.files import write_json
from gan_init.core.registry import check_choice
from gan_init.metrics.evaluate import ALL_METRICS, evaluate_samples
from gan_init.metrics.feature_cache import CachedFeatures
from gan_init.metrics.features import load_feature_extractor


def load_noise_gan(path: str) -> Any:
    """The noise-GAN LightningModule of a checkpoint, in eval mode (imported when used)."""
    from gan_init.models.progressive import load_noise_gan as load

    return load(path)


# A user YAML may only name these: importing or calling anything else could run any code
# (class_path: os.system).
DATA_MODULE_PACKAGE = "data_modules"


def data_module_class(path: Path, class_path: Any) -> type:
    """The class ``class_path`` names, if it is a ``data_modules`` LightningDataModule; else a
    one-line error naming the file, the key and the allowed classes. Nothing outside the
    ``data_modules`` package is imported."""
    from pytorch_lightning import LightningDataModule

    import data_modules

    allowed = sorted(
        f"{DATA_MODULE_PACKAGE}.{name}"
        for name, obj in vars(data_modules).items()
        if isinstance(obj, type) and issubclass(obj, LightningDataModule)
    )
    refused = ValueError(
        f"{path}: class_path {class_path!r} is not a data module; allowed: {', '.join(allowed)}"
    )
    if not isinstance(class_path, str):
        raise refused
    module_name, _, class_name = class_path.rpartition(".")
    if module_name != DATA_MODULE_PACKAGE and not module_name.startswith(f"{DATA_MODULE_PACKAGE}."):
        raise refused
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise refused from None
    if not (isinstance(cls, type) and issubclass(cls, LightningDataModule)):
        raise refused
    return cls


def build_datamodule(spec: str, spatial_dims: int, size: int | None = None) -> Any:
    """``icbm`` or a YAML config (``class_path``/``init_args``, at top level or under ``data``)."""
    if spec == "icbm":
        from data_modules import IcbmDataModule

        dm = IcbmDataModule(spatial_dims=spatial_dims, size=size, mode="noise")
    else:
        import yaml

        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"--data {spec!r}: neither 'icbm' nor a YAML config file")
        config = yaml.safe_load(path.read_text()) or {}
        config = config.get("data", config)
        if "class_path" not in config:
            raise ValueError(
                f"{path}: expected class_path/init_args (at top level or under 'data')"
            )
        cls = data_module_class(path, config["class_path"])
        init_args = config.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ValueError(f"{path}: init_args: expected a mapping of {cls.__name__} arguments")
        dm = cls(**init_args)
    if hasattr(dm, "prepare_data"):
        dm.prepare_data()
    dm.setup("validate")
    return dm


class ProgressFeatures(torch.nn.Module):
    """The feature extractor with a progress bar over the ``n_images`` it will see, and an
    estimate of the whole job from a probe on two images, printed before it starts."""

    def __init__(self, extractor: torch.nn.Module, n_images: int) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features
        self.fingerprint = getattr(extractor, "fingerprint", None)  # keys the feature cache
        self.n_images = n_images
        self.bar = None

    def announce(self, probe: torch.Tensor) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            self.extractor(probe)
        per_image = (time.perf_counter() - start) / probe.shape[0]
        estimate = per_image * self.n_images
        print(
            f"gan-init evaluate: features of {self.n_images} images, about {per_image:.2f} s "
            f"each here: estimated {estimate / 60:.1f} min",
            file=sys.stderr,
            flush=True,
        )
        self.bar = tqdm(total=self.n_images, desc="features", unit="img", file=sys.stderr)
        return estimate

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.extractor(images)
        if self.bar is not None:
            self.bar.update(images.shape[0])
        return feats

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _parse_metrics(text: str) -> list[str]:
    return [
        check_choice("metric", m.strip(), list(ALL_METRICS)) for m in text.split(",") if m.strip()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="gan-init evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="noise-GAN checkpoint (.ckpt)")
    parser.add_argument("--data", default="icbm", help="'icbm' or a YAML data config")
    parser.add_argument("--size", type=int, default=None, help="image side of the icbm data")
    parser.add_argument(
        "--metrics", default="swd,fid,kid,pr,msssim", help=f"of {','.join(ALL_METRICS)}"
    )
    parser.add_argument("--n", type=int, default=256, help="generated samples")
    parser.add_argument("--n-real", type=int, default=None, help="real images (default: --n)")
    parser.add_argument("--n-train", type=int, default=None, help="training images for memo")
    parser.add_argument("--feature", default="inception", help="'inception' or a TorchScript file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output JSON file")
    add_device_option(parser)
    args = parser.parse_args(argv)
    try:
        metrics = _parse_metrics(args.metrics)
    except ValueError as err:
        parser.error(str(err))

    module = load_noise_gan(args.checkpoint)  # on the CPU
    device = resolve_device(args.device)
    if device != "cpu":
        module = module.to(device)
    try:
        dm = build_datamodule(args.data, module.spatial_dims, args.size)
    except (ValueError, FileNotFoundError) as err:
        print(f"gan-init evaluate: --data: {err}", file=sys.stderr)
        return 2
    fake = module.sample(args.n, seed=args.seed, ema=True).float()  # on --device
    size = tuple(fake.shape[2:])
    real = resize_to(dm.real_images(args.n_real or args.n, split=REFERENCE_SPLIT).float(), size)
    train = None
    if "memo" in metrics:
        train = resize_to(dm.real_images(args.n_train or args.n, split="train").float(), size)
    out = Path(args.out)
    feature, real_features = args.feature, None
    if any(m in metrics for m in ("fid", "kid", "pr", "memo")):
        # Each image is measured once (memo reuses FID's features); the fixed real sets'
        # features come from the feature cache the training run filled (same data, network).
        net = load_feature_extractor(args.feature, fake.dim() - 2, image_shape=tuple(size))
        progress = ProgressFeatures(net, 0)
        feature = CachedFeatures(progress, directory=cache_dir() / "features")
        fixed = [s for s in (real, train) if s is not None]
        progress.n_images = fake.shape[0] + sum(feature.count_missing(s, True) for s in fixed)
        progress.announce(fake[:2])
        with torch.no_grad():
            real_features = feature(real, persist=True).double()
            if train is not None:
                feature(train, persist=True)
    with torch.no_grad():
        values = evaluate_samples(
            fake,
            real,
            train,
            metrics,
            feature=feature,
            real_features=real_features,
            seed=args.seed,
            pairs_path=out.with_suffix(".closest_pairs.png") if "memo" in metrics else None,
        )
    record = {
        "checkpoint": str(args.checkpoint),
        "images_shown": int(getattr(module, "images_shown", -1)),
        "resolution": list(size),
        "n_fake": int(fake.shape[0]),
        "n_real": int(real.shape[0]),
        "metrics": values,
    }
    if isinstance(feature, CachedFeatures):
        feature.extractor.close()
    write_json(out, record)
    json.dump(values, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
