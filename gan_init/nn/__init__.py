"""Dimension-generic layers and blocks (pure ``nn.Module``s: no Lightning, no logger)."""

from gan_init.nn.blocks import ConvBlock, ResidualBlock, UpStage, downsample2x, upsample2x
from gan_init.nn.layers import Conv, PixelNorm, init_weights, make_activation, make_norm

__all__ = [
    "Conv",
    "ConvBlock",
    "PixelNorm",
    "ResidualBlock",
    "UpStage",
    "downsample2x",
    "init_weights",
    "make_activation",
    "make_norm",
    "upsample2x",
]
