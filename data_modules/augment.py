"""Random spatial and intensity effects for 2D and 3D images, fast enough to run per sample.

Written in the TorchIO manner (sample the parameters from a generator, then apply them
deterministically) but as one ``grid_sample`` per sample in plain torch: TorchIO's
``RandomElasticDeformation`` + ``RandomAffine`` + intensity transforms cost about 70 ms per 64^2
slice and 300 ms per 32^3 volume on a CPU core (SimpleITK resampling plus deep copies of every
subject), which would make the data the bottleneck; this costs well under a millisecond in 2D.

All functions take images in [0, 1] with the background at 0, shaped ``[1, C, *S]``; the C
channels (T1, T2 of one subject) get the same warp, so pairs stay aligned, and independent
intensity effects.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_init.nn.ops import AVG_POOL, LINEAR_MODE


@dataclass(frozen=True)
class Augmentation:
    """Strengths of the random effects; 0 switches one off.

    Spatial sizes are fractions of the field of view, so the same setting means the same warp at
    any image size.
    """

    rotation_degrees: float = 8.0
    """Maximum rotation about each axis (one axis in 2D, three in 3D)."""
    scale: float = 0.08
    """Per-axis scaling drawn from [1 - scale, 1 + scale]."""
    translation: float = 0.04
    """Maximum shift per axis, as a fraction of the field of view."""
    elastic: float = 0.025
    """Maximum elastic displacement of a control point, as a fraction of the field of view."""
    elastic_points: int = 6
    """Control points per axis of the elastic displacement grid."""
    bias_field: float = 0.3
    """Maximum |coefficient| of the order-3 polynomial log bias field (as TorchIO's RandomBiasField)."""
    gamma: float = 0.2
    """Gamma drawn as exp(U(-gamma, gamma)) (as TorchIO's RandomGamma log_gamma)."""
    noise_std: float = 0.015
    """Gaussian noise with a standard deviation drawn from [0, noise_std], on the [0, 1] scale."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp all channels of ``x`` [1, C, *S] alike, then apply intensity effects per channel."""
        return self.intensity(self.warp(x, generator), generator)

    def warp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random affine + elastic warp of ``x`` [1, C, *S] (values outside the image: 0)."""
        grid = random_grid(tuple(x.shape[2:]), self, generator)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def intensity(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Bias field, gamma and noise, drawn independently for each channel of ``x`` [1, C, *S]."""
        shape = tuple(x.shape[2:])
        out = []
        for c in range(x.shape[1]):
            y = x[:, c : c + 1].clamp(0, 1)
            if self.bias_field > 0:
                basis = _polynomial_basis(shape, 3)  # [M, *S]
                coef = _uniform(generator, (basis.shape[0],), self.bias_field)
                y = y * torch.exp(torch.tensordot(coef, basis, dims=1))
            if self.gamma > 0:
                y = y.clamp(0, 1) ** math.exp(float(_uniform(generator, (), self.gamma)))
            if self.noise_std > 0:
                std = float(torch.rand((), generator=generator)) * self.noise_std
                y = y + std * torch.randn(y.shape, generator=generator)
            out.append(y.clamp(0, 1))
        return torch.cat(out, dim=1)


def _uniform(generator: torch.Generator, shape: tuple[int, ...], bound: float) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def _rotation(angles: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Rotation matrix [d, d] from one angle (2D) or three Euler angles (3D), in radians."""
    if spatial_dims == 2:
        c, s = torch.cos(angles[0]), torch.sin(angles[0])
        return torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    rot = torch.eye(3)
    for axis, a in enumerate(angles):
        i, j = [k for k in range(3) if k != axis]
        r = torch.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)
        rot = rot @ r
    return rot


def random_grid(
    shape: tuple[int, ...], aug: Augmentation, generator: torch.Generator
) -> torch.Tensor:
    """A sampling grid [1, *S, d] for ``grid_sample``: random affine plus smooth elastic field."""
    d = len(shape)
    n_angles = 1 if d == 2 else 3
    angles = _uniform(generator, (n_angles,), math.radians(aug.rotation_degrees))
    scales = 1 + _uniform(generator, (d,), aug.scale)
    # Normalized coordinates span 2, so a shift of fraction f of the field of view is 2 f.
    shift = _uniform(generator, (d,), 2 * aug.translation)
    theta = torch.cat([_rotation(angles, d) @ torch.diag(scales), shift[:, None]], dim=1)
    grid = F.affine_grid(theta[None], [1, 1, *shape], align_corners=False)
    if aug.elastic > 0:
        p = max(aug.elastic_points, 2)
        coarse = _uniform(generator, (1, d, *([p] * d)), 2 * aug.elastic)
        # Linear interpolation of the control grid has kinks at the control points; a box blur
        # over one control-point spacing makes the displacement smooth (like a B-spline). The
        # blur runs on a 4x finer grid than the control points, not at full size (10x cheaper
        # in 3D), and a last linear upsampling is smooth at the image's scale.
        fine = [4 * (p - 1) + 1] * d
        field = F.interpolate(coarse, size=fine, mode=LINEAR_MODE[d], align_corners=True)
        for axis in range(d):  # separable: d passes of 5 taps instead of 5^d
            k = tuple(5 if a == axis else 1 for a in range(d))
            pad = tuple(2 if a == axis else 0 for a in range(d))
            field = AVG_POOL[d](field, k, stride=1, padding=pad, count_include_pad=False)
        field = F.interpolate(field, size=shape, mode=LINEAR_MODE[d], align_corners=True)
        grid = grid + field.movedim(1, -1)
    return grid


@functools.lru_cache(maxsize=16)
def _polynomial_basis(shape: tuple[int, ...], order: int) -> torch.Tensor:
    """Monomials of the normalized coordinates up to ``order`` (constant left out): [M, *S]."""
    axes = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij")
    terms = []
    for powers in itertools.product(range(order + 1), repeat=len(shape)):
        if 0 < sum(powers) <= order:
            term = torch.ones(shape)
            for axis, power in zip(axes, powers):
                term = term * axis**power
            terms.append(term)
    return torch.stack(terms)
