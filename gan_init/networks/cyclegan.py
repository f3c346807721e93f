"""The CycleGAN networks: the generator (encoder -> trunk -> decoder -> head from the backbone
registry) and the PatchGAN discriminator, 2D and 3D from one class each."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from gan_init.networks.backbones import BackboneSpec, build_backbone
from gan_init.nn.blocks import ConvBlock
from gan_init.nn.layers import Conv, check_spatial_dims


class CycleGANGenerator(nn.Module):
    """Image -> image generator: ``encoder -> trunk -> decoder -> head``.

    Any input size works: the input is padded (with the backbone's padding mode) up to a multiple
    of ``2**n_down`` and the output cropped back, so ``[B, C_in, *S] -> [B, C_out, *S]``.
    """

    def __init__(self, backbone: BackboneSpec | None = None) -> None:
        super().__init__()
        self.spec = backbone if backbone is not None else BackboneSpec()
        parts = build_backbone(self.spec)
        self.encoder = parts.encoder()
        self.trunk = parts.trunk()
        self.decoder = parts.decoder()
        self.head = parts.head()

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network (saved in checkpoints beside the weights)."""
        return {"network": "CycleGANGenerator", "backbone": self.spec.to_dict()}

    def encode(self, x: Tensor) -> Tensor:
        """``[B, C_in, *S] -> [B, W_bottleneck, *S / 2**n_down]`` (S a multiple of 2**n_down)."""
        return self.encoder(x)

    def render(self, h: Tensor) -> Tensor:
        """The part the noise generator shares: ``trunk -> decoder -> head``."""
        return self.head(self.decoder(self.trunk(h)))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[2:]
        multiple = 2**self.spec.n_down
        pad: list[int] = []
        for n in reversed(size):  # F.pad takes the last dimension first
            pad += [0, (-n) % multiple]
        if any(pad):
            mode = {"zero": "constant", "reflect": "reflect", "replicate": "replicate"}
            x = F.pad(x, pad, mode=mode[self.spec.padding])
        y = self.render(self.encode(x))
        return y[(..., *(slice(0, n) for n in size))]


class PatchGANDiscriminator(nn.Module):
    """The PatchGAN of Isola et al. 2017 / Zhu et al. 2017 (70x70 receptive field at n_layers=3).

    ``stem`` (4x4 stride 2, no norm) -> ``down1 .. down{n_layers-1}`` (4x4 stride 2, norm) ->
    ``features`` (4x4 stride 1, norm) -> ``logits`` (4x4 stride 1, one channel); LeakyReLU(0.2).
    ``[B, C, *S] -> [B, 1, *P]``: one real/fake score per patch.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        base_width: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        equalized_lr: bool = False,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers}: expected >= 1")
        self.knobs = dict(
            spatial_dims=spatial_dims, in_channels=in_channels, base_width=base_width,
            n_layers=n_layers, norm=norm, equalized_lr=equalized_lr,
        )  # fmt: skip
        self.n_layers = n_layers
        block = dict(kernel_size=4, padding=1, activation="lrelu", equalized_lr=equalized_lr)
        width = [base_width * min(2**i, 8) for i in range(n_layers + 1)]
        self.stem = ConvBlock(spatial_dims, in_channels, width[0], stride=2, norm="none", **block)
        for i in range(1, n_layers):
            self.add_module(
                f"down{i}",
                ConvBlock(spatial_dims, width[i - 1], width[i], stride=2, norm=norm, **block),
            )
        self.features = ConvBlock(
            spatial_dims, width[n_layers - 1], width[n_layers], norm=norm, **block
        )
        self.logits = Conv(
            spatial_dims, width[n_layers], 1, 4, padding=1, equalized_lr=equalized_lr, gain=1.0
        )

    @property
    def config(self) -> dict[str, Any]:
        return {"network": "PatchGANDiscriminator", **self.knobs}

    def min_input_size(self) -> int:
        """Smallest input side that leaves at least one patch score."""
        n = 1
        for _ in range(2):  # logits and features: k4 s1 p1 shrink by 1 each
            n += 1
        for _ in range(self.n_layers):  # stride-2 k4 p1: out = floor(n / 2)
            n *= 2
        return n

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[2:]) < self.min_input_size():
            raise ValueError(
                f"PatchGAN with n_layers={self.n_layers} needs inputs of at least "
                f"{self.min_input_size()} per side, got {tuple(x.shape[2:])}; lower n_layers"
            )
        x = self.stem(x)
        for i in range(1, self.n_layers):
            x = getattr(self, f"down{i}")(x)
        return self.logits(self.features(x))
