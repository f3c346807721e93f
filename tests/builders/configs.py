"""Tiny configs for ``gan-init fit`` (the shipped configs shrunk: ``tests/tiny_configs.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.builders.networks import SIZE, tiny_spec


def tiny_noise_gan_config(dims: int) -> dict[str, Any]:
    """``tiny_noise_gan(dims, "stem")`` on ``BlobData`` as ``model`` and ``data`` config
    sections."""
    size = SIZE[dims]
    return {
        "model": {
            "class_path": "gan_init.models.ProgressiveGAN",
            "init_args": {
                "generator": {
                    "class_path": "gan_init.networks.NoiseGenerator",
                    "init_args": {"backbone": tiny_spec(dims).to_dict(), "image_size": size,
                                  "latent_dim": 8, "grow": "stem", "start_resolution": 2},
                },
                "discriminator": {
                    "class_path": "gan_init.networks.ProgressiveDiscriminator",
                    "init_args": {"spatial_dims": dims, "image_size": size, "min_resolution": 2,
                                  "base_width": 4, "patch_stem": True},
                },
            },
        },
        "data": {"class_path": "tests.builders.images.BlobData", "init_args": {"spatial_dims": dims}},
    }  # fmt: skip


def noise_config(tmp_path: Path, callbacks: list | None = None) -> str:
    """``tmp_path/noise.yaml``: ``gan-init fit`` of the tiny 2D noise GAN for 2 steps, quiet, into
    ``tmp_path/run``."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 2, "logger": False,
            "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path / "run"),
            "callbacks": callbacks or [],
        },
        **tiny_noise_gan_config(2),
    }  # fmt: skip
    path = tmp_path / "noise.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)
