"""Every noise config fits the CycleGAN config it starts from: same backbone knobs (the shared
trunk/decoder/head), and a progressive discriminator whose top block, with ``patch_stem`` (set by
``gan-init pipeline`` for cyclegan_g_and_d), takes D_T1's PatchGAN stem, so every init strategy
can run on every shipped config; and the arms of a sweep share one critic."""

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


SWEEPS = sorted((CONFIGS.parent / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_arm_of_a_sweep_trains_against_the_same_critic(path):
    """`gan-init pipeline` turns the critic's PatchGAN stem on for a strategy that copies D_T1's
    stem in (cyclegan_g_and_d). A sweep with such an arm must have it on for every arm, or that
    arm alone would train against another critic; a sweep without one may leave it off (the 3D
    map's config does: its pilot found the critic's own top block better)."""
    from gan_init.experiment.sweep import load_sweep
    from gan_init.transfer.strategies import INIT_STRATEGIES
    from tests.test_protocol import sweep_configs

    sweep = load_sweep(path)
    params = sweep["parameters"]
    spec = params.get("arm") or params.get("init_strategy") or {}
    arms = spec.get("values") or [spec.get("value", "cyclegan")]
    strategies = {str(a).split("+")[0] for a in arms}
    _, noise = sweep_configs(sweep)
    disc = yaml.safe_load(noise.read_text())["model"]["init_args"]["discriminator"]["init_args"]
    override = "--noise.model.init_args.discriminator.init_args.patch_stem=true"
    on = bool(disc.get("patch_stem")) or override in sweep.get("command", [])
    if any(INIT_STRATEGIES.meta(s)["patch_stem_critic"] for s in strategies):
        assert on, f"{path.name}: {sorted(strategies)} with the critic's patch stem off"
