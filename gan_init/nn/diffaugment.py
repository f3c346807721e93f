"""Differentiable augmentation of the critic's inputs (DiffAugment, Zhao et al. 2020), for MRI.

With few training images the critic memorizes them and the generator's training collapses;
augmenting what the critic sees counters it, but only if real and fake images are augmented
alike and the augmentation is differentiable, so the generator learns through it (Zhao et al.
2020, sec. 3, "DiffAugment"; Karras et al. 2020, "ADA", adapts the probability, here every op is
always applied, as in DiffAugment). The rule (Zhao et al. 2020, eq. 2-3): the critic step scores
``D(T(x))`` and ``D(T(G(z)))``, the generator step ``D(T(G(z)))``, with ``T`` drawn afresh for
every batch; the gradient penalty is taken on the critic's augmented inputs.

A policy is a comma-separated list of op names, applied in order::

    augment = DiffAugment("translation,cutout,contrast")
    x_aug = augment(x, generator)  # x: [B, C, *S], 2D or 3D; same shape out

The ops suit MRI in [-1, 1] with background -1 (what a translation or cutout uncovers):

- ``translation``: shift by up to 1/8 of each side, per sample and axis, integer voxels,
  uncovered voxels background.
- ``cutout``: one box of half of each side set to background, per sample.
- ``brightness``: add U[-0.5, 0.5) per sample (DiffAugment's range for [-1, 1] images).
- ``contrast``: scale about the background by U[0.5, 1.5) per sample (a receive-gain change:
  background stays background; DiffAugment scales about the image mean instead).

No colour or saturation (one channel, and T1 contrast carries the anatomy), and no flips or
rotations: anatomy has a laterality and an orientation, and a critic that accepts mirrored
brains lets the generator produce them (augmentations that leak into samples, Karras et al.
2020, sec. 2).

Each op samples its parameters from the ``torch.Generator`` it is given, then applies them
(``sample`` / ``apply``, a deterministic twin as in TorchIO): the model passes per-step
generators (``gan_init.core.seeding``), so a resumed run augments as the uninterrupted one did.
Pure torch, written once for 2D and 3D (``x.shape[2:]``).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from gan_init.core.registry import Registry

# Intensity of the background (outside the head) in the images the GAN sees.
BACKGROUND = -1.0
# DiffAugment's ratios (Zhao et al. 2020, reference code): shift by up to 1/8 of a side; cut out
# a box of half of each side.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


class Augmentation(Protocol):
    """One op: ``sample`` draws the parameters of a batch, ``apply`` uses them (differentiable in
    ``x``)."""

    def sample(self, x: Tensor, generator: torch.Generator | None) -> Tensor: ...

    def apply(self, x: Tensor, params: Tensor) -> Tensor: ...


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


def _per_sample(x: Tensor, values: Tensor) -> Tensor:
    """``[B] -> [B, 1, ..., 1]`` broadcastable against ``x``."""
    return values.reshape(-1, *(1,) * (x.dim() - 1))


def _uniform(x: Tensor, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    return low + (high - low) * u


def _randint(x: Tensor, high: int, generator: torch.Generator | None) -> Tensor:
    """``[B]`` integers in ``[0, high)``."""
    return torch.randint(0, high, (x.shape[0],), generator=generator, device=x.device)


class Brightness:
    """Add U[-0.5, 0.5) per sample."""

    def sample(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return _uniform(x, -0.5, 0.5, generator)  # [B]

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        return x + _per_sample(x, params)


class Contrast:
    """Scale about the background by U[0.5, 1.5) per sample."""

    def sample(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return _uniform(x, 0.5, 1.5, generator)  # [B]

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        return BACKGROUND + _per_sample(x, params) * (x - BACKGROUND)


class Translation:
    """Shift by up to 1/8 of each side (integer voxels, per sample and axis), background fill."""

    def sample(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        shifts = []
        for n in x.shape[2:]:
            s = int(n * TRANSLATION_RATIO + 0.5)
            shifts.append(_randint(x, 2 * s + 1, generator) - s)
        return torch.stack(shifts, dim=1)  # [B, D]: voxels along each spatial axis

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        out = x
        batch = x.shape[0]
        for d, n in enumerate(x.shape[2:]):
            # out[..., i, ...] = x[..., i - shift, ...] along axis 2 + d, background outside.
            index = torch.arange(n, device=x.device)[None, :] - params[:, d : d + 1]  # [B, n]
            view = [batch] + [1] * (x.dim() - 1)
            view[2 + d] = n
            inside = ((index >= 0) & (index < n)).reshape(view)
            index = index.clamp(0, n - 1).reshape(view).expand_as(out)
            out = torch.where(inside, out.gather(2 + d, index), out.new_tensor(BACKGROUND))
        return out


class Cutout:
    """Set one box of half of each side to background, per sample (its centre uniform; the box
    may reach past the border, as in DiffAugment)."""

    def sample(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        centres = []
        for n in x.shape[2:]:
            size = int(n * CUTOUT_RATIO + 0.5)
            centres.append(_randint(x, n + (1 - size % 2), generator))
        return torch.stack(centres, dim=1)  # [B, D]

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        batch = x.shape[0]
        box = torch.ones((), dtype=torch.bool, device=x.device)
        for d, n in enumerate(x.shape[2:]):
            size = int(n * CUTOUT_RATIO + 0.5)
            start = params[:, d : d + 1] - size // 2  # [B, 1]
            coords = torch.arange(n, device=x.device)[None, :]
            view = [batch] + [1] * (x.dim() - 1)
            view[2 + d] = n
            box = box & ((coords >= start) & (coords < start + size)).reshape(view)
        return torch.where(box, x.new_tensor(BACKGROUND), x)


for _name, _op in {
    "translation": Translation,
    "cutout": Cutout,
    "brightness": Brightness,
    "contrast": Contrast,
}.items():
    AUGMENTATIONS.register(_name)(_op())


def parse_policy(policy: str, option: str = "augment") -> list[str]:
    """The op names of ``policy`` (``"translation,cutout"``), each checked: an unknown or
    repeated name is a one-line ``ValueError`` naming ``option`` and the known ops."""
    names = [name.strip() for name in str(policy).split(",")]
    known = ", ".join(AUGMENTATIONS.names())
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(f"{option}={policy!r}: {AUGMENTATIONS.unknown_message(name)}")
        if names.count(name) > 1:
            raise ValueError(f"{option}={policy!r}: {name!r} appears twice (known: {known})")
    return names


class DiffAugment:
    """A policy of differentiable ops, applied in order (no parameters, no state).

    Args:
        policy: comma-separated op names from ``AUGMENTATIONS`` (``translation``, ``cutout``,
            ``brightness``, ``contrast``).
        option: the option's name in error messages.
    """

    def __init__(self, policy: str, option: str = "augment") -> None:
        self.names = parse_policy(policy, option)
        self.ops = [AUGMENTATIONS.get(name) for name in self.names]

    @property
    def policy(self) -> str:
        return ",".join(self.names)

    def sample(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Every op's parameters for the batch ``x: [B, C, *S]``, drawn in policy order."""
        return [op.sample(x, generator) for op in self.ops]

    def apply(self, x: Tensor, params: list[Tensor]) -> Tensor:
        """``x: [B, C, *S]`` augmented with ``params`` (from ``sample``); same shape."""
        for op, p in zip(self.ops, params, strict=True):
            x = op.apply(x, p)
        return x

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, self.sample(x, generator))

    def __repr__(self) -> str:
        return f"DiffAugment({self.policy!r})"
