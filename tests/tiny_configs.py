"""Shipped configs shrunk to CPU-test size (16 px, widths 4, a few images): the same callbacks
and structure as the real thing, so tests exercise what users run."""

from __future__ import annotations

import copy
from typing import Any


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
            args.update(
                every_n_images=8, costly_every_n_images=10**9, n_samples=4, n_real=4, n_train=4
            )
        elif kind == "ModelCheckpoint":
            args["every_n_train_steps"] = 4
    return config
