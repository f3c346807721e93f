"""Load a CycleGAN generator or discriminator from any supported checkpoint file.

Two kinds of file are accepted, told apart by their contents:

- this project's Lightning checkpoint (``checkpoint["gan_init"]`` metadata, ``state_dict`` keys
  ``g_t2_to_t1.*``, ``g_t1_to_t2.*``, ``d_t1.*``, ``d_t2.*``): the network is rebuilt from the
  metadata; no Lightning import.
- a canonical PyTorch CycleGAN network file (bare state_dict, ``latest_net_G_B.pth``): the network
  is built from the shapes and key count. Such a file holds one network and does not say which
  direction it maps: the direction is the caller's word (with A = T1, B = T2: ``G_B`` is
  T2 -> T1, ``G_A`` is T1 -> T2, ``D_B`` judges T1, ``D_A`` judges T2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_init.core.registry import check_choice
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.transfer.canonical import (
    discriminator_from_canonical,
    generator_from_canonical,
    is_canonical_discriminator,
    is_canonical_generator,
)
from gan_init.transfer.checkpoints import (
    DIRECTIONS,
    DOMAINS,
    METADATA_KEY,
    CheckpointError,
    is_project_checkpoint,
    load_project_network,
    read_metadata,
    safe_load,
)


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = sorted(str(k) for k in obj)
        return f"a dict with keys {keys[:8]}{'...' if len(keys) > 8 else ''}"
    return f"a {type(obj).__name__}"


def _wrong_kind(path: Path, obj: Any, wanted: str) -> CheckpointError:
    if isinstance(obj, dict) and "state_dict" in obj and METADATA_KEY not in obj:
        hint = (
            "a Lightning checkpoint without gan-init metadata (not written by this project's "
            "CycleGAN)"
        )
    else:
        hint = _describe(obj)
    return CheckpointError(
        f"{path}: expected {wanted} (a gan-init CycleGAN checkpoint or a canonical PyTorch "
        f"CycleGAN file), found {hint}"
    )


def checkpoint_info(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The ``gan_init`` metadata of a project checkpoint, or ``{}`` for a canonical file."""
    obj = safe_load(path, map_location)
    return read_metadata(obj, path) if is_project_checkpoint(obj) else {}


@dataclass(frozen=True)
class _Kind:
    """What tells one kind of CycleGAN network apart in a file, and how to build it."""

    name: str  # "CycleGAN generator"
    which: str  # the argument that picks one network of a checkpoint: "direction"
    choices: tuple[str, ...]  # its values
    prefix: str  # state_dict prefix in a project checkpoint: "g" -> "g_t2_to_t1"
    is_canonical: Callable[[Mapping[str, Any]], bool]
    from_canonical: Callable[..., nn.Module]
    loader: str  # the public function that loads it
    spatial_dims: Callable[[Any], int]  # of a built network


_KINDS = {
    "generator": _Kind(
        "CycleGAN generator", "direction", DIRECTIONS, "g",
        is_canonical_generator, generator_from_canonical, "load_cyclegan_generator",
        lambda net: net.spec.spatial_dims,
    ),
    "discriminator": _Kind(
        "PatchGAN discriminator", "domain", DOMAINS, "d",
        is_canonical_discriminator, discriminator_from_canonical, "load_cyclegan_discriminator",
        lambda net: net.spatial_dims,
    ),
}  # fmt: skip


def _load_cyclegan_network(
    kind: str,
    path: str | Path,
    which: str,
    map_location: str | torch.device,
    spatial_dims: int | None,
) -> nn.Module:
    """Network ``which`` (a direction or a domain) of kind ``kind`` from a checkpoint file."""
    this = _KINDS[kind]
    check_choice(this.which, which, this.choices)
    path = Path(path)
    obj = safe_load(path, map_location)
    if is_project_checkpoint(obj):
        net = load_project_network(obj, f"{this.prefix}_{which}", path)
    elif isinstance(obj, dict) and this.is_canonical(obj):
        net = this.from_canonical(obj, source=str(path))
    else:
        for other in _KINDS.values():
            if other is not this and isinstance(obj, dict) and other.is_canonical(obj):
                raise CheckpointError(
                    f"{path}: a canonical {other.name} file, not a {kind} (use {other.loader})"
                )
        raise _wrong_kind(path, obj, f"a {this.name}")
    _check_dims(path, this.spatial_dims(net), spatial_dims)
    return net.to(map_location)


def load_cyclegan_generator(
    path: str | Path,
    direction: str = "t2_to_t1",
    map_location: str | torch.device = "cpu",
    *,
    spatial_dims: int | None = None,
) -> CycleGANGenerator:
    """The ``direction`` generator (``t2_to_t1`` or ``t1_to_t2``) of a checkpoint, in eval mode.

    ``spatial_dims``: when given, a network of another dimensionality is an error.
    Raises ``CheckpointError`` naming what did not match.
    """
    return _load_cyclegan_network("generator", path, direction, map_location, spatial_dims)


def load_cyclegan_discriminator(
    path: str | Path,
    domain: str = "t1",
    map_location: str | torch.device = "cpu",
    *,
    spatial_dims: int | None = None,
) -> PatchGANDiscriminator:
    """The discriminator judging ``domain`` images (``t1`` or ``t2``) of a checkpoint, in eval
    mode. Raises ``CheckpointError`` naming what did not match."""
    return _load_cyclegan_network("discriminator", path, domain, map_location, spatial_dims)


def _check_dims(path: Path, found: int, expected: int | None) -> None:
    if expected is not None and found != expected:
        raise CheckpointError(
            f"{path}: a {found}D network, expected {expected}D (spatial_dims={expected})"
        )
