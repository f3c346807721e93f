"""Blocks built from the dimension-generic layers. Children are named by meaning
(``conv``, ``norm``, ``act``; ``conv1``/``conv2``), so state_dict keys describe the network."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gan_init.core.registry import check_choice
from gan_init.nn.layers import UPSAMPLES, Conv, make_activation, make_norm
from gan_init.nn.ops import AVG_POOL, LINEAR_MODE


class ConvBlock(nn.Module):
    """conv -> norm -> activation. ``[B, C_in, *S] -> [B, C_out, *S / stride]``."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        padding_mode: str = "zero",
        norm: str = "instance",
        activation: str = "relu",
        equalized_lr: bool = False,
    ) -> None:
        super().__init__()
        self.conv = Conv(
            spatial_dims,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if padding is None else padding,
            padding_mode=padding_mode,
            equalized_lr=equalized_lr,
        )
        self.norm = make_norm(norm, spatial_dims, out_channels)
        self.act = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    """x + norm(conv(act(norm(conv(x))))), the CycleGAN/ResNet block. Shape-preserving."""

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        padding_mode: str = "reflect",
        norm: str = "instance",
        activation: str = "relu",
        equalized_lr: bool = False,
    ) -> None:
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode=padding_mode, equalized_lr=equalized_lr)
        self.conv1 = Conv(spatial_dims, channels, channels, **conv)
        self.norm1 = make_norm(norm, spatial_dims, channels)
        self.act = make_activation(activation)
        self.conv2 = Conv(spatial_dims, channels, channels, **conv)
        self.norm2 = make_norm(norm, spatial_dims, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class UpStage(nn.Module):
    """x2 upsampling -> norm -> activation. ``[B, C_in, *S] -> [B, C_out, *2S]``.

    ``transpose``: a 3x3 transposed convolution, stride 2, padding 1, output padding 1 (CycleGAN);
    ``nearest``/``linear``: resize x2, then a 3x3 convolution (no checkerboard artefacts).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        upsample: str = "transpose",
        padding_mode: str = "reflect",
        norm: str = "instance",
        activation: str = "relu",
        equalized_lr: bool = False,
    ) -> None:
        super().__init__()
        self.upsample = check_choice("upsample", upsample, UPSAMPLES)
        if upsample == "transpose":
            self.conv = Conv(
                spatial_dims,
                in_channels,
                out_channels,
                3,
                stride=2,
                padding=1,
                output_padding=1,
                transposed=True,
                equalized_lr=equalized_lr,
            )
        else:
            self.conv = Conv(
                spatial_dims,
                in_channels,
                out_channels,
                3,
                padding=1,
                padding_mode=padding_mode,
                equalized_lr=equalized_lr,
            )
        self.norm = make_norm(norm, spatial_dims, out_channels)
        self.act = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample != "transpose":
            x = upsample2x(x, self.upsample)
        return self.act(self.norm(self.conv(x)))


def upsample2x(x: Tensor, mode: str = "nearest") -> Tensor:
    """x2 resize of ``[B, C, *S]`` in any number of spatial dims."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    linear = LINEAR_MODE[x.dim() - 2]
    return F.interpolate(x, scale_factor=2.0, mode=linear, align_corners=False)


def downsample2x(x: Tensor) -> Tensor:
    """x2 average-pool of ``[B, C, *S]`` (as Karras et al. downscale images between levels)."""
    return AVG_POOL[x.dim() - 2](x, 2)
