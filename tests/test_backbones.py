"""The generator backbone registry, the CycleGAN generator and the PatchGAN, 2D and 3D."""

import pytest
import torch

from gan_init.core.registry import Registry
from gan_init.networks import (
    BACKBONES,
    BackboneSpec,
    CycleGANGenerator,
    PatchGANDiscriminator,
    build_backbone,
)


def tiny(spatial_dims: int, **knobs) -> BackboneSpec:
    return BackboneSpec(spatial_dims=spatial_dims, base_width=4, n_blocks=2, **knobs)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("size", [16, 13, 9])
def test_cyclegan_generator_keeps_any_input_size(spatial_dims, size):
    g = CycleGANGenerator(tiny(spatial_dims))
    sizes = (size, size + 2, size - 1)[:spatial_dims]
    y = g(torch.randn(2, 1, *sizes))
    assert y.shape == (2, 1, *sizes)
    assert y.abs().max() <= 1.0  # tanh head


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("upsample", ["transpose", "nearest", "linear"])
@pytest.mark.parametrize("n_down", [1, 2, 3])
def test_parts_compose_to_the_generator(spatial_dims, upsample, n_down):
    g = CycleGANGenerator(tiny(spatial_dims, upsample=upsample, n_down=n_down))
    x = torch.randn(1, 1, *(16,) * spatial_dims)
    h = g.encode(x)
    assert h.shape == (1, g.spec.bottleneck_width, *(16 // 2**n_down,) * spatial_dims)
    torch.testing.assert_close(g.render(h), g(x))
    assert g.decoder.n_stages == n_down


def test_default_generator_matches_reference_resnet_9blocks_size():
    # The canonical resnet_9blocks, ngf=64, one channel in and out: 11,365,633 parameters.
    g = CycleGANGenerator(BackboneSpec())
    assert sum(p.numel() for p in g.parameters()) == 11_365_633
    assert len(g.state_dict()) == 48


def test_keys_are_named_by_meaning():
    keys = set(CycleGANGenerator(tiny(2)).state_dict())
    for key in [
        "encoder.stem.conv.weight",
        "encoder.down1.conv.weight",
        "encoder.down2.conv.weight",
        "trunk.blocks.1.conv1.weight",
        "trunk.blocks.1.conv2.bias",
        "decoder.up1.conv.weight",
        "decoder.up2.conv.weight",
        "head.conv.weight",
    ]:
        assert key in keys


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shared_parts_from_the_registry_are_a_strict_copy(spatial_dims):
    """Parts built from the same entry and knobs (as the noise generator builds them) have the
    CycleGAN generator's keys and shapes, and a strict copy makes them compute the same."""
    spec = tiny(spatial_dims, equalized_lr=True, upsample="nearest")
    g = CycleGANGenerator(spec)
    entry = build_backbone(spec)
    parts = torch.nn.ModuleDict(
        {"trunk": entry.trunk(), "decoder": entry.decoder(), "head": entry.head()}
    )
    shared = {k: v for k, v in g.state_dict().items() if not k.startswith("encoder.")}
    assert {k: v.shape for k, v in parts.state_dict().items()} == {
        k: v.shape for k, v in shared.items()
    }
    parts.load_state_dict(shared, strict=True)
    h = torch.randn(2, spec.bottleneck_width, *(3,) * spatial_dims)
    rendered = parts["head"](parts["decoder"](parts["trunk"](h)))
    torch.testing.assert_close(rendered, g.render(h))


def test_max_width_caps_channels():
    spec = BackboneSpec(base_width=16, n_down=3, max_width=32)
    assert [spec.width(i) for i in range(4)] == [16, 32, 32, 32]
    assert CycleGANGenerator(spec).encode(torch.randn(1, 1, 16, 16)).shape[1] == 32


def test_spec_diff_names_each_difference_and_round_trips():
    a, b = BackboneSpec(), BackboneSpec(n_blocks=6, norm="batch")
    assert a.diff(b) == ["n_blocks: 9 here, 6 there", "norm: 'instance' here, 'batch' there"]
    assert BackboneSpec.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match=r"ckpt.pt: unknown backbone knob\(s\) \['n_blockz'\]"):
        BackboneSpec.from_dict({"n_blockz": 3}, source="ckpt.pt")


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"name": "resnte"}, "unknown backbone 'resnte'; did you mean 'resnet'"),
        ({"norm": "instnce"}, "did you mean 'instance'"),
        ({"padding": "reflection"}, "did you mean 'reflect'"),
        ({"upsample": "transposed"}, "did you mean 'transpose'"),
        ({"spatial_dims": 1}, "spatial_dims=1"),
        ({"base_width": 0}, "base_width=0"),
    ],
)
def test_bad_knobs_are_named(knobs, message):
    with pytest.raises((KeyError, ValueError), match=message):
        BackboneSpec(**knobs)


def test_registry_refuses_duplicates_and_suggests_names():
    reg = Registry("strategy")
    reg.register("cyclegan")(object)
    with pytest.raises(ValueError, match="strategy 'cyclegan' is already registered"):
        reg.register("cyclegan")(object)
    with pytest.raises(KeyError, match="did you mean 'cyclegan'"):
        reg.get("cyclgan")
    assert "resnet" in BACKBONES and BACKBONES.names() == sorted(BACKBONES.names())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_patchgan_shapes(spatial_dims):
    d = PatchGANDiscriminator(spatial_dims, base_width=4, n_layers=2)
    assert d.min_input_size() == 12
    y = d(torch.randn(2, 1, *(17,) * spatial_dims))
    # 17 -> 8 -> 4 (stride 2) -> 3 -> 2 (stride 1, k4 p1)
    assert y.shape == (2, 1, *(2,) * spatial_dims)
    with pytest.raises(ValueError, match="at least 12 per side"):
        d(torch.randn(1, 1, *(8,) * spatial_dims))


def test_patchgan_default_is_the_70x70_reference_layout():
    d = PatchGANDiscriminator()
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "stem.conv.weight": (64, 1, 4, 4),
        "down1.conv.weight": (128, 64, 4, 4),
        "down2.conv.weight": (256, 128, 4, 4),
        "features.conv.weight": (512, 256, 4, 4),
        "logits.weight": (1, 512, 4, 4),
    }
    # Receptive field of one patch score: 70 pixels (Isola et al. 2017). Instance norm mixes
    # statistics over the whole image, so measure the convolutions alone.
    x = torch.zeros(1, 1, 140, 140, requires_grad=True)
    y = PatchGANDiscriminator(norm="none")(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
    assert rows.max() - rows.min() + 1 == 70
