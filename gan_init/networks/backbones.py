"""The generator backbone registry: the one idea the project rests on.

A backbone entry builds the named parts of a generator:

- ``encoder``: image -> bottleneck features (7x7 stem, ``n_down`` stride-2 stages); CycleGAN only.
- ``trunk``: residual blocks at the bottleneck resolution.
- ``decoder``: ``n_down`` x2 upsampling stages, bottleneck -> full resolution.
- ``head``: features -> image (7x7 conv + tanh).

The CycleGAN generator is ``encoder -> trunk -> decoder -> head``; the noise generator is
``latent stem -> trunk -> decoder -> head``. Both build their parts from the same entry and the same
``BackboneSpec``, so the shared parts have identical keys and shapes and a transfer is a strict copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gan_init.core.registry import Registry, check_choice
from gan_init.nn.blocks import ConvBlock, ResidualBlock, UpStage
from gan_init.nn.layers import (
    ACTIVATIONS,
    NORMS,
    PADDINGS,
    UPSAMPLES,
    Conv,
    check_spatial_dims,
)


@dataclass(frozen=True)
class BackboneSpec:
    """The knobs of a backbone entry. Both stages must use equal specs (``diff`` names the gaps).

    Attributes:
        name: registry entry (``resnet``).
        spatial_dims: 2 (slices) or 3 (volumes).
        in_channels: image channels into the encoder (CycleGAN input).
        out_channels: image channels out of the head.
        base_width: channels after the stem (``ngf``); stage ``i`` has ``base_width * 2**i``.
        n_down: stride-2 stages in the encoder = x2 stages in the decoder.
        n_blocks: residual blocks in the trunk.
        norm: ``instance``, ``batch``, ``pixel`` or ``none``.
        padding: ``reflect``, ``replicate`` or ``zero``.
        upsample: ``transpose`` (CycleGAN), ``nearest`` or ``linear`` (resize + conv).
        activation: ``relu`` (CycleGAN) or ``lrelu``.
        equalized_lr: equalized learning rate in every convolution (Karras et al. 2018).
        max_width: cap on the channels of any stage (keeps 3D models in memory); None: no cap.
    """

    name: str = "resnet"
    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 1
    base_width: int = 64
    n_down: int = 2
    n_blocks: int = 9
    norm: str = "instance"
    padding: str = "reflect"
    upsample: str = "transpose"
    activation: str = "relu"
    equalized_lr: bool = False
    max_width: int | None = None

    def __post_init__(self) -> None:
        check_spatial_dims(self.spatial_dims)
        check_choice("norm", self.norm, NORMS)
        check_choice("padding", self.padding, PADDINGS)
        check_choice("upsample", self.upsample, UPSAMPLES)
        check_choice("activation", self.activation, ACTIVATIONS)
        for knob in ("in_channels", "out_channels", "base_width"):
            if getattr(self, knob) < 1:
                raise ValueError(f"{knob}={getattr(self, knob)}: expected a positive integer")
        if self.n_down < 0 or self.n_blocks < 0:
            raise ValueError(f"n_down={self.n_down}, n_blocks={self.n_blocks}: expected >= 0")
        if self.name not in BACKBONES:
            raise KeyError(BACKBONES.unknown_message(self.name))

    def width(self, level: int) -> int:
        """Channels at encoder level ``level`` (0 = full resolution, ``n_down`` = bottleneck)."""
        width = self.base_width * 2**level
        return min(width, self.max_width) if self.max_width else width

    @property
    def bottleneck_width(self) -> int:
        return self.width(self.n_down)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, knobs: dict[str, Any], *, source: str = "backbone spec") -> BackboneSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown backbone knob(s) {unknown} (known: {sorted(known)})"
            )
        return cls(**knobs)

    def diff(self, other: BackboneSpec, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """Human-readable differences, e.g. ``["n_blocks: 9 here, 6 there"]``."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} here, {getattr(other, f.name)!r} there"
            for f in dataclasses.fields(self)
            if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)
        ]


class Backbone(Protocol):
    """What a registry entry provides: builders of the four named parts."""

    spec: BackboneSpec

    def encoder(self) -> nn.Module: ...
    def trunk(self) -> nn.Module: ...
    def decoder(self) -> Decoder: ...
    def head(self) -> nn.Module: ...


BACKBONES: Registry[type] = Registry("backbone")


def build_backbone(spec: BackboneSpec) -> Backbone:
    """The entry named by ``spec.name``, ready to build parts."""
    return BACKBONES.get(spec.name)(spec)


class Encoder(nn.Module):
    """``stem`` (7x7) then ``down1 .. down{n_down}`` (stride 2). ``[B, C, *S] -> [B, W, *S/2^n]``."""

    def __init__(self, stem: nn.Module, downs: list[nn.Module]) -> None:
        super().__init__()
        self.stem = stem
        for i, down in enumerate(downs, start=1):
            self.add_module(f"down{i}", down)
        self.n_down = len(downs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for i in range(1, self.n_down + 1):
            x = getattr(self, f"down{i}")(x)
        return x


class Trunk(nn.Module):
    """Residual blocks at the bottleneck: ``blocks.0 .. blocks.{n-1}``. Shape-preserving.

    ``checkpointing = True`` (``SpeedOptions(checkpoint_trunk=True)``): while gradients are on,
    each block's activations are recomputed in the backward pass instead of stored
    (``torch.utils.checkpoint``), trading one more trunk forward for the trunk's activations.
    """

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        recompute = self.checkpointing and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return x


class Decoder(nn.Module):
    """``up1 .. up{n_down}``, counted from the bottleneck. ``[B, W, *S] -> [B, W0, *S*2^n]``.

    ``forward(x, n_stages)`` runs only the first ``n_stages`` (a progressive generator renders
    intermediate levels from them); ``out_widths[i]`` is the channel count after ``up{i+1}``.
    """

    def __init__(self, ups: list[nn.Module], out_widths: list[int]) -> None:
        super().__init__()
        for i, up in enumerate(ups, start=1):
            self.add_module(f"up{i}", up)
        self.n_stages = len(ups)
        self.out_widths = list(out_widths)

    def stage(self, i: int) -> nn.Module:
        """Stage ``i`` (1-based, ``up{i}``)."""
        return getattr(self, f"up{i}")

    def forward(self, x: Tensor, n_stages: int | None = None) -> Tensor:
        for i in range(1, (self.n_stages if n_stages is None else n_stages) + 1):
            x = self.stage(i)(x)
        return x


class Head(nn.Module):
    """7x7 convolution to image channels, then tanh. ``[B, W0, *S] -> [B, C_out, *S]`` in [-1, 1]."""

    def __init__(self, conv: Conv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.conv(x))


@BACKBONES.register("resnet")
class ResNetBackbone:
    """The classic CycleGAN generator (Johnson et al. 2016; Zhu et al. 2017 ``resnet_9blocks``)."""

    def __init__(self, spec: BackboneSpec) -> None:
        self.spec = spec

    def _common(self) -> dict[str, Any]:
        s = self.spec
        return dict(norm=s.norm, activation=s.activation, equalized_lr=s.equalized_lr)

    def encoder(self) -> Encoder:
        s = self.spec
        stem = ConvBlock(
            s.spatial_dims, s.in_channels, s.width(0), 7, padding=3, padding_mode=s.padding,
            **self._common(),
        )  # fmt: skip
        # Stride-2 3x3 convs with zero padding 1, as in the reference implementation.
        downs = [
            ConvBlock(
                s.spatial_dims, s.width(i), s.width(i + 1), 3, stride=2, padding=1, **self._common()
            )
            for i in range(s.n_down)
        ]
        return Encoder(stem, downs)

    def trunk(self) -> Trunk:
        s = self.spec
        return Trunk(
            [
                ResidualBlock(
                    s.spatial_dims, s.bottleneck_width, padding_mode=s.padding, **self._common()
                )
                for _ in range(s.n_blocks)
            ]
        )

    def decoder(self) -> Decoder:
        s = self.spec
        levels = list(range(s.n_down, 0, -1))  # bottleneck level n_down -> level 0
        ups = [
            UpStage(
                s.spatial_dims,
                s.width(lv),
                s.width(lv - 1),
                upsample=s.upsample,
                padding_mode=s.padding,
                **self._common(),
            )  # fmt: skip
            for lv in levels
        ]
        return Decoder(ups, [s.width(lv - 1) for lv in levels])

    def head(self) -> Head:
        s = self.spec
        conv = Conv(
            s.spatial_dims, s.width(0), s.out_channels, 7, padding=3, padding_mode=s.padding,
            equalized_lr=s.equalized_lr, gain=1.0,
        )  # fmt: skip
        return Head(conv)
