"""Progressive noise generator and discriminator: shapes per level and through fade-in, 2D and 3D,
all growth modes; fade-in endpoints; level/alpha in the state_dict; equalized lr."""

import pytest
import torch
import torch.nn.functional as F

from gan_init.networks import BackboneSpec, NoiseGenerator, ProgressiveDiscriminator
from gan_init.networks.progressive import MinibatchStd
from gan_init.nn.blocks import downsample2x, upsample2x

# (spatial_dims, image side, n_down, start resolution): 16 px in 2D, 8^3 in 3D.
CASES = [(2, 16, 2, 4), (3, 8, 1, 2)]
LATENT = 8


def tiny_spec(spatial_dims: int, n_down: int) -> BackboneSpec:
    return BackboneSpec(
        spatial_dims=spatial_dims, base_width=4, n_down=n_down, n_blocks=1, norm="pixel",
        padding="zero", upsample="nearest", activation="lrelu", equalized_lr=True,
    )  # fmt: skip


def tiny_pair(spatial_dims, size, n_down, start, grow):
    torch.manual_seed(0)
    g = NoiseGenerator(
        tiny_spec(spatial_dims, n_down), image_size=size, latent_dim=LATENT, grow=grow,
        start_resolution=start,
    )  # fmt: skip
    d = ProgressiveDiscriminator(spatial_dims, 1, size, min_resolution=start, base_width=4)
    return g, d


EXPECTED_RESOLUTIONS = {
    (2, "full"): [4, 8, 16],  # stem b4 (= bottleneck), decoder 8, 16
    (2, "stem"): [16],  # one stem level x 2^2
    (2, "none"): [16],
    (3, "full"): [2, 4, 8],  # stem b2, b4 (bottleneck), decoder 8
    (3, "stem"): [4, 8],  # stem b2, b4, each x 2^1
    (3, "none"): [8],
}


@pytest.mark.parametrize("spatial_dims,size,n_down,start", CASES)
@pytest.mark.parametrize("grow", ["full", "stem", "none"])
def test_shapes_per_level_and_through_fade_in(spatial_dims, size, n_down, start, grow):
    g, d = tiny_pair(spatial_dims, size, n_down, start, grow)
    assert g.resolutions == EXPECTED_RESOLUTIONS[(spatial_dims, grow)]
    z = torch.randn(3, LATENT)
    for level, side in enumerate(g.resolutions):
        for alpha in (0.0, 0.3, 1.0):
            g.set_progress(level, alpha)
            d.set_progress(d.resolutions.index(side), g.current_alpha)
            x = g(z)
            assert x.shape == (3, 1, *(side,) * spatial_dims)
            assert x.abs().max() <= 1.0
            assert d(x).shape == (3,)


@pytest.mark.parametrize("spatial_dims,size,n_down,start", CASES)
@pytest.mark.parametrize("grow", ["full", "stem"])
def test_generator_fade_in_blends_upsampled_previous_level(spatial_dims, size, n_down, start, grow):
    g, _ = tiny_pair(spatial_dims, size, 1, start, grow)  # n_down 1: two or more levels
    assert g.n_levels >= 2
    z = torch.randn(2, LATENT)
    top = g.n_levels - 1
    previous = upsample2x(g.image_at(z, top - 1), "nearest")
    current = g.image_at(z, top)
    for alpha in (0.0, 0.25, 1.0):
        g.set_progress(top, alpha)
        torch.testing.assert_close(g(z), alpha * current + (1 - alpha) * previous)


@pytest.mark.parametrize("spatial_dims,size,n_down,start", CASES)
def test_discriminator_fade_in_endpoints(spatial_dims, size, n_down, start):
    _, d = tiny_pair(spatial_dims, size, n_down, start, "full")
    x = torch.randn(4, 1, *(size,) * spatial_dims)
    top = d.n_levels - 1
    d.set_progress(top, 0.0)
    at_zero = d(x)
    d.set_progress(top - 1, 1.0)
    # alpha 0: exactly the previous level on the x2-downsampled image (Karras et al. fig. 2).
    torch.testing.assert_close(at_zero, d(downsample2x(x)))
    d.set_progress(top, 1.0)
    assert not torch.allclose(d(x), at_zero)


def test_discriminator_rejects_wrong_side():
    _, d = tiny_pair(2, 16, 2, 4, "full")
    d.set_progress(1, 1.0)
    with pytest.raises(ValueError, match="expects side 8"):
        d(torch.randn(2, 1, 16, 16))


@pytest.mark.parametrize("grow", ["full", "stem", "none"])
def test_level_and_alpha_are_saved_and_restored(grow):
    g, d = tiny_pair(3, 8, 1, 2, grow)
    for net in (g, d):
        net.set_progress(net.n_levels - 1, 0.375 if net.n_levels > 1 else 1.0)
        state = net.state_dict()
        assert "level" in state and "alpha" in state
        fresh = type(net).from_config(net.config)
        fresh.set_progress(0, 1.0)
        fresh.load_state_dict(state)
        assert (fresh.current_level, fresh.current_alpha) == (
            net.current_level,
            net.current_alpha,
        )


def test_names_by_meaning_and_every_level_built_at_construction():
    g, d = tiny_pair(2, 16, 2, 4, "full")
    keys = set(g.state_dict())
    assert {
        "latent_stem.b4.conv0.weight",
        "to_image.b4.conv.weight",
        "to_image.b8.conv.weight",
    } <= keys
    assert any(k.startswith("trunk.blocks.0.") for k in keys)
    assert {"decoder.up1.conv.weight", "decoder.up2.conv.weight", "head.conv.weight"} <= keys
    dkeys = set(d.state_dict())
    assert {"from_image.b16.weight", "blocks.b16.conv0.weight", "blocks.b16.conv1.weight"} <= dkeys
    assert {"final.conv.weight", "final.dense.weight", "final.out.weight"} <= dkeys
    n_params = sum(p.numel() for p in g.parameters())
    g.set_progress(0, 1.0)
    assert sum(p.numel() for p in g.parameters()) == n_params  # no mutation, only a buffer


def test_patch_stem_mirrors_patchgan_first_layer():
    from gan_init.networks import PatchGANDiscriminator

    d = ProgressiveDiscriminator(2, 1, 16, min_resolution=4, base_width=4, patch_stem=True)
    patch = PatchGANDiscriminator(2, 1, base_width=4, n_layers=2)
    assert d.blocks["b16"].conv0.weight.shape == patch.stem.conv.weight.shape
    assert "b16" not in d.from_image
    # two convolutions deep like every other block: the stem, then a 3x3 at the halved side
    assert d.blocks["b16"].conv1.weight.shape == (4, 4, 3, 3)
    for level, alpha in [(2, 0.5), (2, 1.0), (1, 1.0)]:
        d.set_progress(level, alpha)
        side = d.resolutions[level]
        assert d(torch.randn(2, 1, side, side)).shape == (2,)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_equalized_lr_scales_at_run_time(spatial_dims):
    torch.manual_seed(0)
    d = ProgressiveDiscriminator(spatial_dims, 1, 8, min_resolution=4, base_width=16)
    conv = d.blocks["b8"].conv1  # 16 -> 32, 3x3
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.05)  # stored N(0, 1)
    x = torch.randn(2, 16, *(5,) * spatial_dims)
    fn = F.conv2d if spatial_dims == 2 else F.conv3d
    expected = fn(x, conv.weight * (2 / (16 * 3**spatial_dims)) ** 0.5, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_minibatch_std_appends_group_std(spatial_dims):
    x = torch.randn(6, 3, *(5,) * spatial_dims)
    y = MinibatchStd(group_size=4)(x)  # 6 does not split in 4: groups of gcd(6, 4) = 2
    assert y.shape == (6, 4, *(5,) * spatial_dims)
    torch.testing.assert_close(y[:, :3], x)
    # Group of sample 0 = samples {0, 3}: std over the group, averaged over features and pixels.
    expected = (x[[0, 3]].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 3], torch.full((5,) * spatial_dims, expected.item()))
    torch.testing.assert_close(y[3, 3], y[0, 3])


def test_sizes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="not divisible"):
        NoiseGenerator(tiny_spec(2, 2), image_size=18, latent_dim=LATENT)
    with pytest.raises(ValueError, match="is not 4 x 2"):
        NoiseGenerator(tiny_spec(2, 2), image_size=24, latent_dim=LATENT)  # bottleneck 6
    with pytest.raises(ValueError, match="stem_width"):
        NoiseGenerator(tiny_spec(2, 1), image_size=16, latent_dim=LATENT, grow="stem", stem_width=3)
    with pytest.raises(ValueError, match="grow"):
        NoiseGenerator(tiny_spec(2, 2), image_size=16, latent_dim=LATENT, grow="ful")
