"""Every noise config fits the CycleGAN config it starts from: same backbone knobs (the shared
trunk/decoder/head), and a progressive discriminator whose top block, with ``patch_stem`` (set by
``gan-init pipeline`` for cyclegan_g_and_d), takes D_T1's PatchGAN stem, so every init strategy
can run on every shipped config (the arms of a sweep sharing one critic: tests/test_protocol.py)."""

from pathlib import Path

import pytest
import yaml

from gan_init.networks import PatchGANDiscriminator
from gan_init.networks.progressive import ProgressiveDiscriminator

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
NOISE = sorted(p.stem for p in CONFIGS.glob("noise_*.yaml"))


def source_config(noise: str) -> str:
    """noise_2d -> cyclegan_2d, noise_3d_gpu -> cyclegan_3d_gpu, noise_2d_sweep -> cyclegan_2d."""
    return noise.replace("noise", "cyclegan").replace("_sweep", "")


@pytest.mark.parametrize("noise", NOISE)
def test_noise_config_fits_its_cyclegan(noise):
    n = yaml.safe_load((CONFIGS / f"{noise}.yaml").read_text())["model"]["init_args"]
    c = yaml.safe_load((CONFIGS / f"{source_config(noise)}.yaml").read_text())["model"]["init_args"]
    assert n["generator"]["init_args"]["backbone"] == c["generator"]["init_args"]["backbone"]
    disc = ProgressiveDiscriminator(**{**n["discriminator"]["init_args"], "patch_stem": True})
    patch = PatchGANDiscriminator(**c["discriminator"]["init_args"])
    top = f"blocks.b{n['discriminator']['init_args']['image_size']}.conv0.weight"
    assert disc.state_dict()[top].shape == patch.state_dict()["stem.conv.weight"].shape
