"""Shipped configs shrunk to CPU-test size (16 px, widths 4, a few images): the same callbacks
and structure as the real thing, so tests exercise what users run. ``shrink`` for one config,
``pipeline_configs`` for the CycleGAN and noise configs ``gan-init pipeline`` takes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from gan_init.experiment.pipeline import CONFIGS, load_yaml


def shrink(config: dict[str, Any], size: int) -> dict[str, Any]:
    """A shipped config at CPU-test size: the same callbacks and structure, tiny everything."""
    config = copy.deepcopy(config)
    trainer = config["trainer"]
    # bf16-mixed runs on the CPU too (the GPU configs use it), so it is kept; fp16 is CUDA-only.
    precision = "bf16-mixed" if "bf16" in str(trainer.get("precision", "")) else "32-true"
    trainer.update(
        accelerator="cpu", devices=1, strategy="auto", precision=precision,
        log_every_n_steps=1, enable_progress_bar=False,
    )  # fmt: skip
    trainer["logger"] = [lg for lg in trainer["logger"] if lg["class_path"].endswith("CSVLogger")]
    model = config["model"]["init_args"]
    data = config["data"]["init_args"]
    data.update(size=size, batch_size=2, samples_per_epoch=4, num_workers=0)
    if "epochs_constant" in model:  # CycleGAN
        trainer["max_epochs"] = 1
        model.update(epochs_constant=1, epochs_decay=0, ssim_kernel=3)
        model["generator"]["init_args"]["backbone"].update(base_width=4, n_blocks=1)
        model["discriminator"]["init_args"].update(base_width=4, n_layers=1)
        data["val_samples"] = 2
        trainer["callbacks"] = [
            cb for cb in trainer["callbacks"] if not cb["class_path"].endswith("ImageGrid")
        ]
        return config
    gen = model["generator"]["init_args"]
    bottleneck = size // 2 ** gen["backbone"]["n_down"]
    gen.update(
        image_size=size, latent_dim=8, start_resolution=min(gen["start_resolution"], bottleneck)
    )
    gen["backbone"].update(base_width=4, n_blocks=1)
    disc = model["discriminator"]["init_args"]
    disc.update(image_size=size, base_width=4, max_width=8, min_resolution=gen["start_resolution"])
    for cb in trainer["callbacks"]:
        kind, args = cb["class_path"].rsplit(".", 1)[-1], cb.setdefault("init_args", {})
        if kind == "ProgressiveSchedule":
            n = len(args["train_images"])
            args.update(train_images=[4] * n, fade_images=[2] * n, batch_size=[2] * n)
        elif kind == "EvaluationCallback":
            # feature_cache None: tests keep the real sets' features in memory, never in the
            # user's ~/.cache (the disk cache has its own tests, in a temporary folder)
            args.update(
                every_n_images=8, costly_every_n_images=10**9, n_samples=4, n_real=4, n_train=4,
                feature_cache=None, endpoint_from_images=0,
            )  # fmt: skip
        elif kind == "ModelCheckpoint":
            args["every_n_train_steps"] = 4
    return config


def pipeline_configs(tmp_path: Path, dims: int) -> tuple[Path, Path]:
    """The shipped CPU configs of ``dims``, shrunk: 16 px images, widths 4, a few steps."""
    size = 16
    cyc = load_yaml(CONFIGS / f"cyclegan_{dims}d.yaml")
    cyc["trainer"].update(max_epochs=1, log_every_n_steps=1)
    cyc["model"]["init_args"].update(epochs_constant=1, epochs_decay=0, ssim_kernel=3)
    backbone = dict(base_width=4, n_blocks=1)
    cyc["model"]["init_args"]["generator"]["init_args"]["backbone"].update(backbone)
    cyc["model"]["init_args"]["discriminator"]["init_args"].update(base_width=4, n_layers=1)
    cyc["data"]["init_args"].update(size=size, batch_size=2, samples_per_epoch=4, val_samples=2)

    noise = load_yaml(CONFIGS / f"noise_{dims}d.yaml")
    noise["trainer"].update(log_every_n_steps=1)
    gen = noise["model"]["init_args"]["generator"]["init_args"]
    gen.update(image_size=size, latent_dim=8)
    gen["backbone"].update(backbone)
    noise["model"]["init_args"]["discriminator"]["init_args"].update(
        image_size=size, base_width=4, max_width=8
    )
    noise["data"]["init_args"].update(size=size, batch_size=2, samples_per_epoch=4)
    callbacks = []
    for cb in noise["trainer"]["callbacks"]:
        kind = cb["class_path"].rsplit(".", 1)[-1]
        if kind == "ProgressiveSchedule":
            n = len(cb["init_args"]["train_images"])
            cb["init_args"] = dict(train_images=[4] * n, fade_images=[2] * n, batch_size=[2] * n)
            if dims == 3:  # 16^3 with n_down 2: levels 4 and 8 (stem), then the decoder's 8, 16
                cb["init_args"] = dict(train_images=4, fade_images=2, batch_size=2)
        elif kind == "EvaluationCallback":
            cb["init_args"].update(
                every_n_images=8, metrics=["swd"], costly_metrics=[], final_metrics=["swd", "msssim"],
                n_samples=4, n_real=4, n_train=4, feature=None,
            )  # fmt: skip
        elif kind == "ModelCheckpoint":
            cb["init_args"]["every_n_train_steps"] = 4
        callbacks.append(cb)
    noise["trainer"]["callbacks"] = callbacks
    paths = tmp_path / f"cyclegan_{dims}d.yaml", tmp_path / f"noise_{dims}d.yaml"
    paths[0].write_text(yaml.safe_dump(cyc))
    paths[1].write_text(yaml.safe_dump(noise))
    return paths
