"""Dimension-generic layers and blocks, 2D and 3D."""

import math

import pytest
import torch
import torch.nn.functional as F

from gan_init.nn import Conv, ConvBlock, PixelNorm, ResidualBlock, UpStage, init_weights, make_norm

DIMS = [2, 3]


def shape(spatial_dims: int, n: int) -> tuple[int, ...]:
    return (n,) * spatial_dims


@pytest.mark.parametrize("spatial_dims", DIMS)
@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "zero"])
def test_conv_matches_torch_conv_with_padding(spatial_dims, padding_mode):
    conv = Conv(spatial_dims, 3, 5, 3, padding=1, padding_mode=padding_mode)
    ref_cls = torch.nn.Conv2d if spatial_dims == 2 else torch.nn.Conv3d
    ref = ref_cls(
        3, 5, 3, padding=1, padding_mode={"zero": "zeros"}.get(padding_mode, padding_mode)
    )
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, *shape(spatial_dims, 7))
    torch.testing.assert_close(conv(x), ref(x))


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_equalized_lr_stores_unit_normal_and_scales_at_run_time(spatial_dims):
    torch.manual_seed(0)
    conv = Conv(spatial_dims, 16, 32, 3, padding=1, equalized_lr=True)
    fan_in = 16 * 3**spatial_dims
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.05)  # stored N(0, 1)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(fan_in))
    x = torch.randn(1, 16, *shape(spatial_dims, 5))
    conv_fn = F.conv2d if spatial_dims == 2 else F.conv3d
    expected = conv_fn(x, conv.weight * conv.scale, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    # The gradient reaches the stored weight through the scale (what equalizes the update size).
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("equalized_lr", [False, True])
def test_set_effective_weight_round_trips(equalized_lr):
    conv = Conv(2, 4, 6, 3, equalized_lr=equalized_lr)
    w = torch.randn(6, 4, 3, 3)
    conv.set_effective_weight(w)
    torch.testing.assert_close(conv.effective_weight(), w)
    with pytest.raises(ValueError, match=r"weight shape \(6, 4, 5, 5\)"):
        conv.set_effective_weight(torch.randn(6, 4, 5, 5))


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_transposed_conv_layout_and_shape(spatial_dims):
    conv = Conv(spatial_dims, 8, 4, 3, stride=2, padding=1, output_padding=1, transposed=True)
    assert conv.weight.shape == (8, 4, *shape(spatial_dims, 3))  # stored [in, out, *k] as PyTorch
    ref_cls = torch.nn.ConvTranspose2d if spatial_dims == 2 else torch.nn.ConvTranspose3d
    ref = ref_cls(8, 4, 3, stride=2, padding=1, output_padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 8, *shape(spatial_dims, 5))
    assert conv(x).shape == (2, 4, *shape(spatial_dims, 10))
    torch.testing.assert_close(conv(x), ref(x))


def test_transposed_conv_refuses_reflect_padding():
    with pytest.raises(ValueError, match="pads with zeros only"):
        Conv(2, 4, 4, 3, transposed=True, padding_mode="reflect")


@pytest.mark.parametrize("spatial_dims", DIMS)
@pytest.mark.parametrize("norm", ["instance", "batch", "pixel", "none"])
def test_blocks_shapes(spatial_dims, norm):
    x = torch.randn(2, 4, *shape(spatial_dims, 6))
    assert ConvBlock(spatial_dims, 4, 8, stride=2, norm=norm)(x).shape == (
        2,
        8,
        *shape(spatial_dims, 3),
    )
    assert ResidualBlock(spatial_dims, 4, norm=norm)(x).shape == x.shape
    for upsample in ("transpose", "nearest", "linear"):
        up = UpStage(spatial_dims, 4, 2, upsample=upsample, norm=norm)
        assert up(x).shape == (2, 2, *shape(spatial_dims, 12))


def test_pixel_norm_gives_unit_mean_square_per_position():
    y = PixelNorm()(torch.randn(3, 16, 5, 7) * 10)
    torch.testing.assert_close(y.pow(2).mean(dim=1), torch.ones(3, 5, 7), rtol=1e-4, atol=1e-4)


def test_instance_norm_has_no_parameters_like_the_reference_cyclegan():
    assert list(make_norm("instance", 3, 8).state_dict()) == []


def test_unknown_options_suggest_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'instance'"):
        make_norm("instanse", 2, 4)
    with pytest.raises(ValueError, match="did you mean 'reflect'"):
        Conv(2, 1, 1, 3, padding_mode="reflct")
    with pytest.raises(ValueError, match="spatial_dims=4"):
        Conv(4, 1, 1, 3)


def test_init_weights_normal_sets_effective_std_for_both_parameterizations():
    torch.manual_seed(0)
    for equalized_lr in (False, True):
        block = ConvBlock(2, 64, 64, equalized_lr=equalized_lr)
        init_weights(block, "normal", 0.02)
        assert block.conv.effective_weight().std().item() == pytest.approx(0.02, rel=0.05)
        if equalized_lr:
            assert block.conv.weight.std().item() == pytest.approx(
                0.02 / block.conv.scale, rel=0.05
            )
