"""Dimension-generic layers: one class serves 2D and 3D through ``spatial_dims``.

Convolutions keep their weight as a plain parameter and compute with ``weight * scale``: with
equalized learning rate (Karras et al. 2018, sec. 4.1) the stored weight is N(0, 1) and
``scale = gain / sqrt(fan_in)`` is applied at run time; without it ``scale = 1``. What a layer
computes with is ``effective_weight()``, which is what weight transfer copies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Norm
from torch import Tensor, nn

from gan_init.core.registry import check_choice
from gan_init.nn.ops import CONV, CONV_TRANSPOSE

PADDINGS = ("reflect", "replicate", "zero")
NORMS = ("instance", "batch", "pixel", "none")
ACTIVATIONS = ("relu", "lrelu", "none")
UPSAMPLES = ("transpose", "nearest", "linear")


def check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims={spatial_dims!r}: expected 2 (slices) or 3 (volumes)")
    return spatial_dims


class Conv(nn.Module):
    """Convolution or transposed convolution in ``spatial_dims`` dimensions.

    Args:
        padding: padding on every side (for a transposed convolution: its ``padding`` argument).
        padding_mode: ``reflect``, ``replicate`` or ``zero``; a transposed convolution pads with
            zeros only.
        equalized_lr: store N(0, 1) weights and scale them by ``gain / sqrt(fan_in)`` at run time.
        transposed: a transposed convolution; its weight is stored ``[in, out, *k]`` as in PyTorch.

    Shapes: ``[B, in_channels, *S] -> [B, out_channels, *S']``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        padding_mode: str = "zero",
        bias: bool = True,
        equalized_lr: bool = False,
        transposed: bool = False,
        output_padding: int = 0,
        gain: float = math.sqrt(2.0),
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        check_choice("padding_mode", padding_mode, PADDINGS)
        if transposed and padding_mode != "zero":
            raise ValueError("a transposed convolution pads with zeros only (padding_mode='zero')")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.padding_mode, self.transposed, self.output_padding = (
            padding_mode,
            transposed,
            output_padding,
        )
        self.equalized_lr = equalized_lr
        k = (kernel_size,) * spatial_dims
        shape = (in_channels, out_channels, *k) if transposed else (out_channels, in_channels, *k)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # He et al. fan-in; a stride-s transposed conv touches each output with k^d / s^d taps.
        fan_in = in_channels * kernel_size**spatial_dims
        if transposed:
            fan_in = max(1.0, fan_in / stride**spatial_dims)
        self.he_std = gain / math.sqrt(fan_in)
        self.scale = self.he_std if equalized_lr else 1.0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Equalized lr: N(0, 1) stored, He scale at run time; otherwise He init stored directly.
        nn.init.normal_(self.weight, 0.0, 1.0 if self.equalized_lr else self.he_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def effective_weight(self) -> Tensor:
        """The weight the layer computes with (stored weight x run-time scale)."""
        return self.weight * self.scale

    @torch.no_grad()
    def set_effective_weight(self, weight: Tensor) -> None:
        """Store ``weight`` so that ``effective_weight()`` equals it (same layout as stored)."""
        if weight.shape != self.weight.shape:
            raise ValueError(f"weight shape {tuple(weight.shape)} != {tuple(self.weight.shape)}")
        self.weight.copy_(weight / self.scale)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.effective_weight()
        if self.transposed:
            fn = CONV_TRANSPOSE[self.spatial_dims]
            return fn(x, weight, self.bias, self.stride, self.padding, self.output_padding)
        padding = self.padding
        if padding and self.padding_mode != "zero":
            x = F.pad(x, (padding,) * (2 * self.spatial_dims), mode=self.padding_mode)
            padding = 0
        return CONV[self.spatial_dims](x, weight, self.bias, self.stride, padding)

    def extra_repr(self) -> str:
        kind = "transposed, " if self.transposed else ""
        return (
            f"{kind}{self.spatial_dims}d, {self.in_channels}->{self.out_channels}, "
            f"k={self.kernel_size}, s={self.stride}, p={self.padding} ({self.padding_mode}), "
            f"equalized_lr={self.equalized_lr}"
        )


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalization (Karras et al. 2018, eq. in sec. 4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def make_norm(norm: str, spatial_dims: int, channels: int) -> nn.Module:
    """``instance`` (no affine, no running stats, as in CycleGAN), ``batch``, ``pixel`` or ``none``."""
    check_choice("norm", norm, NORMS)
    if norm == "instance":
        return Norm[Norm.INSTANCE, spatial_dims](channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return Norm[Norm.BATCH, spatial_dims](channels)
    if norm == "pixel":
        return PixelNorm()
    return nn.Identity()


def make_activation(activation: str) -> nn.Module:
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return nn.ReLU()
    if activation == "lrelu":
        return nn.LeakyReLU(0.2)
    return nn.Identity()


@torch.no_grad()
def init_weights(net: nn.Module, scheme: str = "normal", std: float = 0.02) -> nn.Module:
    """Re-initialize every ``Conv`` of ``net``: ``normal`` N(0, std) as in CycleGAN (Zhu et al.)
    or ``he``. Layers with equalized learning rate keep N(0, 1) storage: their *effective* weight
    gets the scheme."""
    check_choice("init scheme", scheme, ("normal", "he"))
    for module in net.modules():
        if isinstance(module, Conv):
            module.reset_parameters()
            if scheme == "normal":
                module.set_effective_weight(torch.randn_like(module.weight) * std)
    return net
