"""What the trunk is fed (issue 11, point 4): with ``stem_output="backbone"`` the latent stem ends
as the CycleGAN encoder ends (the backbone's norm and activation), in every growth mode and at
every level, so a transferred trunk starts on inputs with the statistics it was trained on."""

import pytest
import torch

from gan_init.networks import NoiseGenerator
from gan_init.networks.progressive import GROW_MODES
from tests.builders.networks import SIZE, tiny_spec


def generator(spatial_dims: int, grow: str, stem_output: str, **knobs) -> NoiseGenerator:
    torch.manual_seed(0)
    return NoiseGenerator(
        tiny_spec(spatial_dims, **knobs), image_size=SIZE[spatial_dims], latent_dim=8, grow=grow,
        start_resolution=2, stem_output=stem_output,
    )  # fmt: skip


def trunk_inputs(g: NoiseGenerator) -> list[torch.Tensor]:
    """What enters the trunk, at every level the trunk runs."""
    seen: list[torch.Tensor] = []
    hook = g.trunk.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    z = torch.randn(3, g.latent_dim)
    with torch.no_grad():
        for level in range(g.n_levels):
            g.set_progress(level, 0.5)  # mid fade-in: both levels' images are rendered
            g(z)
    hook.remove()
    return seen


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("grow", GROW_MODES)
def test_backbone_ending_feeds_the_trunk_non_negative_per_channel_normalized(spatial_dims, grow):
    g = generator(spatial_dims, grow, "backbone")
    inputs = trunk_inputs(g)
    assert inputs
    sides = {x.shape[-1] for x in inputs}
    if grow == "stem":  # every stem level feeds the trunk
        assert sides == {r // 2**g.spec.n_down for r in g.resolutions}
    dims = tuple(range(2, 2 + spatial_dims))
    for x in inputs:
        assert x.min() >= 0  # ReLU, as the encoder's last ConvBlock ends
        assert (x > 0).any()
    # Before the ReLU: instance norm, so every sample's every channel has mean 0 and variance 1.
    pre: list[torch.Tensor] = []
    for block in g.latent_stem.children():
        if block.backbone_ending:
            block.out_norm.register_forward_hook(lambda m, a, out: pre.append(out.detach()))
    inputs = trunk_inputs(g)
    assert len(pre) >= len(inputs)
    for y in pre:
        torch.testing.assert_close(y.mean(dims), torch.zeros(y.shape[:2]), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            y.var(dims, unbiased=False), torch.ones(y.shape[:2]), atol=1e-3, rtol=0
        )
    for x in inputs:
        assert any(torch.equal(x, torch.relu(y)) for y in pre)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_pixelnorm_ending_stays_the_default(spatial_dims):
    g = generator(spatial_dims, "stem", "pixelnorm")
    assert NoiseGenerator(tiny_spec(spatial_dims), SIZE[spatial_dims], 8).stem_output == "pixelnorm"
    for x in trunk_inputs(g):
        assert x.min() < 0  # LeakyReLU then pixel norm: signed, per-pixel normalized
        norms = x.pow(2).mean(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-4, rtol=0)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_backbone_ending_is_named_and_rebuilds_from_config(spatial_dims):
    # A batch-norm backbone gives the ending tensors: their keys say what they are.
    g = generator(spatial_dims, "full", "backbone", norm="batch")
    last = f"b{g.bottleneck_resolution}"
    keys = [k for k in g.state_dict() if ".out_norm." in k]
    assert keys and all(k.startswith(f"latent_stem.{last}.out_norm.") for k in keys)
    rebuilt = NoiseGenerator.from_config(g.config)
    assert rebuilt.stem_output == "backbone"
    rebuilt.load_state_dict(g.state_dict(), strict=True)
    with pytest.raises(ValueError, match="stem_output"):
        generator(spatial_dims, "full", "encoder")
