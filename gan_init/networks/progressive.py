"""The networks of the progressive noise-to-image GAN (Karras et al. 2018, "Progressive growing of
GANs"), 2D and 3D from one class each.

Every resolution level is built at construction; which level runs and the fade-in factor are
buffers (``level``, ``alpha``) in the state_dict, so a checkpoint restores them and the module
never changes shape during training. A callback drives them (``gan_init.callbacks.progressive``).

Fade-in (Karras et al. 2018, sec. 3, fig. 2): while level ``l`` fades in, the output is
``alpha * image_l + (1 - alpha) * upsample2x(image_{l-1})`` in the generator, and the
discriminator mixes ``alpha * block_l(from_image_l(x)) + (1 - alpha) * from_image_{l-1}(down(x))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gan_init.core.registry import check_choice
from gan_init.networks.backbones import BackboneSpec, build_backbone
from gan_init.nn.blocks import downsample2x, upsample2x
from gan_init.nn.layers import (
    Conv,
    PixelNorm,
    check_spatial_dims,
    make_activation,
    make_norm,
)

GROW_MODES = ("full", "stem", "none")
# How a stem block that feeds the trunk ends: ``pixelnorm`` (LeakyReLU + pixel norm, Karras et
# al. 2018) or ``backbone`` (the backbone's own norm and activation, as the CycleGAN encoder ends,
# so a transferred trunk sees inputs with the statistics it was trained on).
STEM_OUTPUTS = ("pixelnorm", "backbone")


def _log2_steps(low: int, high: int, what: str) -> int:
    """Number of x2 steps from ``low`` to ``high`` (both powers-of-two apart), else a clear error."""
    steps = math.log2(high / low) if low > 0 and high >= low else -1.0
    if steps < 0 or steps != int(steps):
        raise ValueError(f"{what}: {high} is not {low} x 2^k (k >= 0)")
    return int(steps)


class _ProgressState(nn.Module):
    """Mixin holding the ``level`` and ``alpha`` buffers shared by G and D."""

    n_levels: int

    def _init_progress(self) -> None:
        # Persistent buffers: saved in the state_dict, restored with the weights.
        self.register_buffer("level", torch.tensor(self.n_levels - 1, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))

    @torch.no_grad()
    def set_progress(self, level: int, alpha: float = 1.0) -> None:
        """Select the running level (0 = lowest resolution) and its fade-in factor in [0, 1]."""
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level={level}: expected 0 .. {self.n_levels - 1}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha}: expected 0 .. 1")
        self.level.fill_(level)
        self.alpha.fill_(1.0 if level == 0 else alpha)

    @property
    def current_level(self) -> int:
        return int(self.level)

    @property
    def current_alpha(self) -> float:
        return float(self.alpha)


class StemBlock(nn.Module):
    """One latent-stem resolution: ``conv0`` (x2 upsample + 3x3, or the 4x4 "dense" layer from z at
    the first level) and ``conv1`` (3x3), each followed by LeakyReLU(0.2) and pixel norm
    (Karras et al. 2018, table 2 and sec. 4.2). ``[B, C_in, *S] -> [B, C_out, *2S]`` (first: z).

    With ``out_norm``/``out_act`` given (``stem_output="backbone"``), ``conv1`` is followed by
    them instead, as the CycleGAN encoder's last block ends (conv, norm, activation)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        first: bool,
        start_resolution: int,
        padding_mode: str,
        equalized_lr: bool,
        out_norm: nn.Module | None = None,
        out_act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.first = first
        if first:
            # z as a [B, L, 1, ...] map through a k x k transposed conv = the dense layer of
            # Karras et al. (gain sqrt(2)/4 over sqrt(L) comes out of the transposed fan-in).
            self.conv0 = Conv(
                spatial_dims, in_channels, out_channels, start_resolution,
                transposed=True, equalized_lr=equalized_lr,
            )  # fmt: skip
        else:
            self.conv0 = Conv(
                spatial_dims, in_channels, out_channels, 3, padding=1,
                padding_mode=padding_mode, equalized_lr=equalized_lr,
            )  # fmt: skip
        self.conv1 = Conv(
            spatial_dims, out_channels, out_channels, 3, padding=1,
            padding_mode=padding_mode, equalized_lr=equalized_lr,
        )  # fmt: skip
        self.act = nn.LeakyReLU(0.2)
        self.norm = PixelNorm()
        self.backbone_ending = out_norm is not None
        if out_norm is not None:
            self.out_norm = out_norm
            self.out_act = out_act if out_act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if not self.first:
            x = upsample2x(x, "nearest")
        x = self.norm(self.act(self.conv0(x)))
        if self.backbone_ending:
            return self.out_act(self.out_norm(self.conv1(x)))
        return self.norm(self.act(self.conv1(x)))


class LatentStem(nn.Module):
    """z -> features at the bottleneck resolution: ``b{r0}`` (from z), ``b{2 r0}``, ... .

    ``forward(z, n_blocks)`` runs the first ``n_blocks`` and returns every block's output
    (``[B, W_i, *(r0 * 2^i,)*d]``), so lower levels can be rendered for the fade-in.
    """

    def __init__(self, blocks: dict[str, StemBlock]) -> None:
        super().__init__()
        for name, block in blocks.items():
            self.add_module(name, block)
        self.names = list(blocks)

    def forward(self, z: Tensor, n_blocks: int | None = None) -> list[Tensor]:
        spatial_dims = self.get_submodule(self.names[0]).conv0.spatial_dims
        x = PixelNorm()(z).reshape(*z.shape, *(1,) * spatial_dims)  # normalize z (sec. 4.2)
        outs = []
        for name in self.names[: len(self.names) if n_blocks is None else n_blocks]:
            x = self.get_submodule(name)(x)
            outs.append(x)
        return outs


class ToImage(nn.Module):
    """1x1 convolution to image channels, then tanh (as the backbone ``head``, so every level's
    image lies in [-1, 1] and fade-in mixes like with like). ``[B, W, *S] -> [B, C, *S]``."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, eq: bool) -> None:
        super().__init__()
        self.conv = Conv(spatial_dims, in_channels, out_channels, 1, equalized_lr=eq, gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.conv(x))


class NoiseGenerator(_ProgressState):
    """Noise -> image generator: ``latent_stem -> trunk -> decoder -> head``.

    ``trunk``, ``decoder`` and ``head`` come from the same backbone entry as the CycleGAN
    generator's (``build_backbone(backbone)``), so their state_dict keys and shapes are equal and a
    transfer is a strict copy.

    Args:
        backbone: the backbone knobs, equal to the CycleGAN stage's.
        image_size: side of the full-resolution image; the bottleneck is
            ``image_size / 2**n_down``, and the stem grows ``start_resolution -> bottleneck``.
        latent_dim: length of z.
        grow: ``full`` (levels over the stem, then over the decoder stages; Karras et al.),
            ``stem`` (trunk, decoder and head always run; only the stem grows, output side =
            stem side x 2**n_down), ``none`` (one level, no growing).
        stem_width: channels of stem levels below the bottleneck (None: the bottleneck width; the
            last stem level always has the bottleneck width). ``stem`` growth needs the default,
            since the trunk then runs on every stem level.
        start_resolution: side of the first stem level (4 as Karras et al.).
        stem_output: how the stem blocks that feed the trunk end (the bottleneck block; in
            ``stem`` growth every block): ``pixelnorm`` (LeakyReLU + pixel norm, Karras et al.)
            or ``backbone`` (the backbone's norm and activation, as the CycleGAN encoder ends:
            instance norm + ReLU for the default ``resnet`` entry), so a transferred trunk is fed
            the kind of input it was trained on.

    Shapes: ``z [B, latent_dim] -> [B, out_channels, *(resolution,)*spatial_dims]`` in [-1, 1],
    ``resolution = resolutions[level]``.
    """

    def __init__(
        self,
        backbone: BackboneSpec | None = None,
        image_size: int = 64,
        latent_dim: int = 128,
        grow: str = "full",
        stem_width: int | None = None,
        start_resolution: int = 4,
        stem_output: str = "pixelnorm",
    ) -> None:
        super().__init__()
        self.spec = backbone if backbone is not None else BackboneSpec()
        s = self.spec
        self.grow = check_choice("grow", grow, GROW_MODES)
        self.stem_output = check_choice("stem_output", stem_output, STEM_OUTPUTS)
        self.spatial_dims = check_spatial_dims(s.spatial_dims)
        self.image_size, self.latent_dim, self.start_resolution = (
            image_size,
            latent_dim,
            start_resolution,
        )
        if image_size % 2**s.n_down:
            raise ValueError(
                f"image_size={image_size} is not divisible by 2**n_down = {2**s.n_down}"
            )
        self.bottleneck_resolution = image_size // 2**s.n_down
        n_stem = 1 + _log2_steps(
            start_resolution,
            self.bottleneck_resolution,
            f"bottleneck side (image_size {image_size} / 2**n_down {2**s.n_down})",
        )
        if grow == "stem" and stem_width not in (None, s.bottleneck_width):
            raise ValueError(
                f"grow='stem' runs the trunk on every stem level, so stem_width={stem_width} "
                f"must equal the bottleneck width {s.bottleneck_width} (or be left out)"
            )
        self.stem_width = stem_width

        stem_res = [start_resolution * 2**i for i in range(n_stem)]
        widths = [stem_width or s.bottleneck_width] * (n_stem - 1) + [s.bottleneck_width]
        self.latent_stem = self._build_latent_stem(stem_res, widths)
        parts = build_backbone(s)
        self.trunk = parts.trunk()
        self.decoder = parts.decoder()
        self.head = parts.head()
        self.resolutions, self.to_image = self._build_levels(stem_res, widths)
        self.n_stem = n_stem
        self.n_levels = len(self.resolutions)
        self._init_progress()

    def _build_latent_stem(self, stem_res: list[int], widths: list[int]) -> LatentStem:
        """Stem block ``b<r>`` of every stem side ``r``, z -> ``widths[i]`` channels at ``r``."""
        s, n_stem = self.spec, len(stem_res)

        def ending(i: int) -> dict[str, nn.Module]:
            # The blocks whose output enters the trunk: every one in stem growth, else the last.
            feeds_trunk = self.grow == "stem" or i == n_stem - 1
            if self.stem_output != "backbone" or not feeds_trunk:
                return {}
            return {
                "out_norm": make_norm(s.norm, self.spatial_dims, widths[i]),
                "out_act": make_activation(s.activation),
            }

        return LatentStem(
            {
                f"b{r}": StemBlock(
                    self.spatial_dims,
                    self.latent_dim if i == 0 else widths[i - 1],
                    widths[i],
                    first=i == 0,
                    start_resolution=self.start_resolution,
                    padding_mode=s.padding,
                    equalized_lr=s.equalized_lr,
                    **ending(i),
                )  # fmt: skip
                for i, r in enumerate(stem_res)
            }
        )

    def _build_levels(
        self, stem_res: list[int], widths: list[int]
    ) -> tuple[list[int], nn.ModuleDict]:
        """Output side per level, and the to-image head of every level the backbone head is
        not (``b<side>``), by growth mode."""
        s = self.spec
        if self.grow == "full":
            dec_res = [self.bottleneck_resolution * 2**j for j in range(1, s.n_down + 1)]
            resolutions = stem_res + dec_res
            # Every level but the last (which renders through `head`) gets a to-image head on
            # the features it ends with: stem blocks, then decoder stages.
            to_image_widths = (widths + self.decoder.out_widths)[:-1]
            to_image_res = resolutions[:-1]
        elif self.grow == "stem":
            resolutions = [r * 2**s.n_down for r in stem_res]
            to_image_widths, to_image_res = [], []
        else:
            resolutions = [self.image_size]
            to_image_widths, to_image_res = [], []
        to_image = nn.ModuleDict(
            {
                f"b{r}": ToImage(self.spatial_dims, w, s.out_channels, s.equalized_lr)
                for r, w in zip(to_image_res, to_image_widths)
            }
        )
        return resolutions, to_image

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network (saved in checkpoints beside the weights)."""
        return {
            "network": "NoiseGenerator",
            "backbone": self.spec.to_dict(),
            "image_size": self.image_size,
            "latent_dim": self.latent_dim,
            "grow": self.grow,
            "stem_width": self.stem_width,
            "start_resolution": self.start_resolution,
            "stem_output": self.stem_output,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseGenerator:
        knobs = {k: v for k, v in config.items() if k != "network"}
        knobs["backbone"] = BackboneSpec.from_dict(knobs["backbone"], source="generator config")
        return cls(**knobs)

    @property
    def resolution(self) -> int:
        """Output side at the current level."""
        return self.resolutions[self.current_level]

    def render(self, h: Tensor) -> Tensor:
        """The part shared with ``CycleGANGenerator.render``: ``trunk -> decoder -> head``.
        ``[B, W_bottleneck, *S] -> [B, C, *S * 2**n_down]``."""
        return self.head(self.decoder(self.trunk(h)))

    def image_at(self, z: Tensor, level: int) -> Tensor:
        """The image of ``level`` with no fade-in. ``[B, L] -> [B, C, *(resolutions[level],)*d]``."""
        return self._images(z, level, both=False)[-1]

    def _images(self, z: Tensor, level: int, both: bool) -> list[Tensor]:
        """Images of ``level`` (and of ``level - 1`` first when ``both``), sharing computation."""
        if self.grow == "stem":
            feats = self.latent_stem(z, level + 1)
            wanted = [level - 1, level] if both else [level]
            return [self.render(feats[i]) for i in wanted]
        if self.grow == "none":
            return [self.render(self.latent_stem(z)[-1])]
        # full: stem levels, then decoder levels; `feature_at(i)` is the features level i renders.
        n_stem = self.n_stem
        feats = self.latent_stem(z, min(level, n_stem - 1) + 1)
        if level >= n_stem - 1:
            h = self.trunk(feats[-1])
            feats[-1] = h
            for j in range(1, level - n_stem + 2):
                h = self.decoder.stage(j)(h)
                feats.append(h)
        wanted = [level - 1, level] if both else [level]
        return [self._to_image(i, feats[i]) for i in wanted]

    def _to_image(self, level: int, h: Tensor) -> Tensor:
        if level == self.n_levels - 1:
            return self.head(h)
        return self.to_image[f"b{self.resolutions[level]}"](h)

    def forward(self, z: Tensor) -> Tensor:
        level, alpha = self.current_level, self.alpha
        if level == 0 or float(alpha) >= 1.0:
            return self.image_at(z, level)
        previous, current = self._images(z, level, both=True)
        # Fade-in (Karras et al. 2018, fig. 2b): blend the upsampled previous level's image.
        previous = upsample2x(previous, "nearest").to(current.dtype)  # may differ under autocast
        return torch.lerp(previous, current, alpha.to(current.dtype))


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, sec. 3): the std of each feature over a
    group of samples, averaged to one value per group, appended as an extra feature map.
    ``[B, C, *S] -> [B, C + 1, *S]``; ``B`` is split into groups of ``min(group_size, B)``."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        b, c, *size = x.shape
        g = math.gcd(b, min(self.group_size, b))  # a group size that divides the batch
        y = x.reshape(g, b // g, c, *size)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(1e-8).sqrt()  # std over the group
        y = y.mean(dim=tuple(range(1, y.dim())), keepdim=True)  # [B/g, 1, 1...]
        y = y.repeat(g, 1, *size)  # back to [B, 1, *S]: sample i belongs to group i % (B/g)
        return torch.cat([x, y], dim=1)


class DownBlock(nn.Module):
    """One discriminator resolution: ``conv0`` -> ``conv1`` -> x2 average-pool, LeakyReLU(0.2)
    after each conv (Karras et al. 2018, table 2). With ``patch_stem`` the block is instead
    ``conv0``: 4x4, stride 2, padding 1, like the first layer of a PatchGAN (Isola et al. 2017), so
    those weights can be copied in, then ``conv1`` (3x3). ``[B, C_in, *S] -> [B, C_out, *S/2]``."""

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, eq: bool, patch_stem: bool
    ) -> None:
        super().__init__()
        self.patch_stem = patch_stem
        self.act = nn.LeakyReLU(0.2)
        if patch_stem:
            self.conv0 = Conv(
                spatial_dims, in_channels, out_channels, 4, stride=2, padding=1, equalized_lr=eq
            )
            # A second conv (3x3, at the halved side) keeps the block two convolutions deep:
            # the bare stem alone left the critic too weak at the top level.
            self.conv1 = Conv(
                spatial_dims, out_channels, out_channels, 3, padding=1, equalized_lr=eq
            )
        else:
            self.conv0 = Conv(spatial_dims, in_channels, in_channels, 3, padding=1, equalized_lr=eq)
            self.conv1 = Conv(
                spatial_dims, in_channels, out_channels, 3, padding=1, equalized_lr=eq
            )

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv0(x))
        if self.patch_stem:
            return self.act(self.conv1(x))
        return downsample2x(self.act(self.conv1(x)))


class FinalBlock(nn.Module):
    """The lowest-resolution block: ``mbstd`` -> ``conv`` (3x3) -> ``dense`` (a k x k conv over the
    whole map) -> ``out`` (linear score), Karras et al. 2018, table 2. ``[B, W, *S] -> [B]``."""

    def __init__(self, spatial_dims: int, channels: int, resolution: int, eq: bool) -> None:
        super().__init__()
        self.mbstd = MinibatchStd()
        self.conv = Conv(spatial_dims, channels + 1, channels, 3, padding=1, equalized_lr=eq)
        self.dense = Conv(spatial_dims, channels, channels, resolution, equalized_lr=eq)
        self.out = Conv(spatial_dims, channels, 1, 1, equalized_lr=eq, gain=1.0)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv(self.mbstd(x)))
        x = self.act(self.dense(x))
        return self.out(x).flatten(1).mean(dim=1)


class ProgressiveDiscriminator(_ProgressState):
    """Image -> score, growing from ``min_resolution`` to ``image_size``.

    Blocks are named by resolution: ``from_image.b{r}`` (1x1 conv), ``blocks.b{r}`` (``conv0``,
    ``conv1``, downsample; at the highest resolution with ``patch_stem``: one 4x4 stride-2
    ``conv0``, fed by the image directly, mirroring the PatchGAN ``stem``), and ``final``
    (minibatch std, conv, dense, score) at ``min_resolution``. Equalized learning rate by default.

    The pyramid always runs from ``min_resolution`` to ``image_size``, whatever the generator's
    growth mode; ``ProgressiveGAN`` selects the level whose side equals the generator's output.

    Args:
        min_resolution: side of the lowest level (4 as Karras et al.).
        base_width: channels at ``image_size`` (at ``image_size / 2`` with ``patch_stem``); they
            double per halving, capped by ``max_width``.
        patch_stem: the highest-resolution block is a PatchGAN-like 4x4 stride-2 conv from the
            image (no ``from_image`` at that level).

    Shapes: ``[B, C, *(resolutions[level],)*d] -> [B]`` (a WGAN critic score).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        image_size: int = 64,
        min_resolution: int = 4,
        base_width: int = 64,
        max_width: int | None = 512,
        equalized_lr: bool = True,
        patch_stem: bool = False,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.knobs = dict(
            spatial_dims=spatial_dims, in_channels=in_channels, image_size=image_size,
            min_resolution=min_resolution, base_width=base_width, max_width=max_width,
            equalized_lr=equalized_lr, patch_stem=patch_stem,
        )  # fmt: skip
        n = 1 + _log2_steps(min_resolution, image_size, "discriminator image_size")
        if patch_stem and n < 2:
            raise ValueError("patch_stem needs at least two levels (min_resolution < image_size)")
        self.resolutions = [min_resolution * 2**i for i in range(n)]
        self.n_levels = n
        self.patch_stem = patch_stem

        def width(r: int) -> int:
            # Channels of the features at side r. With the patch stem the map at image_size / 2
            # has base_width channels, as after the PatchGAN's stem.
            w = base_width * max(1, image_size // r // (2 if patch_stem else 1))
            return min(w, max_width) if max_width else w

        self.widths = {r: width(r) for r in self.resolutions}
        top = self.resolutions[-1]
        self.from_image = nn.ModuleDict(
            {
                f"b{r}": Conv(
                    spatial_dims, in_channels, self.widths[r], 1, equalized_lr=equalized_lr
                )
                for r in self.resolutions
                if not (patch_stem and r == top)
            }
        )
        self.blocks = nn.ModuleDict(
            {
                f"b{r}": DownBlock(
                    spatial_dims,
                    in_channels if (patch_stem and r == top) else self.widths[r],
                    self.widths[r // 2],
                    equalized_lr,
                    patch_stem=patch_stem and r == top,
                )
                for r in self.resolutions[1:]
            }
        )
        self.final = FinalBlock(
            spatial_dims, self.widths[min_resolution], min_resolution, equalized_lr
        )
        self.act = nn.LeakyReLU(0.2)
        self._init_progress()

    @property
    def config(self) -> dict[str, Any]:
        return {"network": "ProgressiveDiscriminator", **self.knobs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ProgressiveDiscriminator:
        return cls(**{k: v for k, v in config.items() if k != "network"})

    @property
    def resolution(self) -> int:
        return self.resolutions[self.current_level]

    def _from_image(self, x: Tensor, r: int) -> Tensor:
        if self.patch_stem and r == self.resolutions[-1]:
            return x  # the patch stem block reads the image itself
        return self.act(self.from_image[f"b{r}"](x))

    def forward(self, x: Tensor) -> Tensor:
        level, alpha = self.current_level, self.alpha
        r = self.resolutions[level]
        if tuple(x.shape[2:]) != (r,) * self.spatial_dims:
            raise ValueError(
                f"discriminator at level {level} expects side {r}, got {tuple(x.shape[2:])}"
            )
        h = self._from_image(x, r)
        if level > 0:
            h = self.blocks[f"b{r}"](h)
            if float(alpha) < 1.0:
                # Fade-in (Karras et al. 2018, fig. 2b): the new block's output against the
                # previous level's from_image on the downsampled image.
                skip = self._from_image(downsample2x(x), r // 2)
                h = torch.lerp(
                    skip.to(h.dtype), h, alpha.to(h.dtype)
                )  # dtypes differ under autocast
            for lower in reversed(self.resolutions[1:level]):
                h = self.blocks[f"b{lower}"](h)
        return self.final(h)
