"""Applying an init strategy's plan to a noise GAN: knob check, strict copy, freezing and the
transfer summary (the source read from is ``gan_init.transfer.source``). Pure functions of
modules and files (no Lightning, no logger); ``gan_init.callbacks.WeightTransfer`` calls them at
fit start."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gan_init.core.visualize import shape_text
from gan_init.networks.backbones import BackboneSpec
from gan_init.networks.cyclegan import CycleGANGenerator
from gan_init.transfer.checkpoints import copy_strict, effective_state, sub_state
from gan_init.transfer.source import TransferSource
from gan_init.transfer.strategies import (
    INIT_STRATEGIES,
    FreezeRule,
    StrategyContext,
    TransferPlan,
    check_strategy,
)

# Knobs that change how a layer stores its weights, not what it computes: the copy moves
# effective weights (docs/architecture.md, "The generator backbone").
PARAMETERIZATION_KNOBS = ("equalized_lr",)

# The parts a summary reports, as module paths in the ``ProgressiveGAN``.
SUMMARY_PARTS = {
    "latent_stem": "generator.latent_stem",
    "trunk": "generator.trunk",
    "decoder": "generator.decoder",
    "head": "generator.head",
    "to_image": "generator.to_image",
    "discriminator": "discriminator",
}


def make_plan(
    init_strategy: str,
    model: nn.Module,
    source: TransferSource | None,
    *,
    freeze_images: int | None = None,
    freeze_from_level: bool = True,
    seed: int = 0,
    freeze_fraction: float = 0.25,
    level_starts: list[int] | None = None,
    total_images: int | None = None,
) -> TransferPlan:
    """The plan of strategy ``init_strategy`` for ``model`` (a ``ProgressiveGAN``); the freeze
    arguments are those of ``StrategyContext``."""
    strategy = INIT_STRATEGIES.get(check_strategy(init_strategy))
    ctx = StrategyContext(
        model, source, freeze_images=freeze_images, freeze_from_level=freeze_from_level,  # type: ignore[arg-type]
        seed=seed, freeze_fraction=freeze_fraction, level_starts=level_starts,
        total_images=total_images,
    )  # fmt: skip
    return strategy(ctx)


def release_points(
    rules: Iterable[FreezeRule], level_starts: list[int] | None
) -> list[dict[str, Any]]:
    """Per freeze rule, the images shown at which it releases under the schedule whose levels
    start at ``level_starts`` (None: known only for rules counted from the start)."""
    points = []
    for rule in rules:
        if rule.images is None:
            at = None
        elif level_starts is not None:
            at = level_starts[rule.level] + rule.images
        else:
            at = rule.images if rule.level == 0 else None
        points.append({"prefix": rule.prefix, "level": rule.level, "release_at_images": at})
    return points


UNKNOWN = "unknown"


def check_scale(
    source_shape: list[int] | None,
    target_size: int,
    source_name: str,
    *,
    allow_mismatch: bool = False,
    source_spacing: float | None = None,
) -> dict[str, Any]:
    """Refuse a source trained at another image size than the noise GAN renders, unless
    ``allow_mismatch``; return what the transfer summary records of the scale.

    ``source_shape``: the CycleGAN's training image shape (None: unknown, e.g. a canonical file,
    accepted and recorded as ``"unknown"``). ``target_size``: the noise GAN's full output side.
    ``scale_ratio`` is source side / target side (2.0: the filters learnt anatomy at twice the
    pixels per millimetre the noise GAN renders).
    """
    record: dict[str, Any] = {
        "source_image_size": UNKNOWN,
        "source_image_shape": UNKNOWN if source_shape is None else list(source_shape),
        "source_voxel_spacing": source_spacing,
        "target_image_size": int(target_size),
        "scale_ratio": UNKNOWN,
        "allow_scale_mismatch": bool(allow_mismatch),
    }
    if source_shape is None:
        return record
    sides = sorted(set(source_shape))
    # An odd-sized source (e.g. 65 x 64) is its largest side; every side must match to pass.
    record["source_image_size"] = side = sides[-1]
    record["scale_ratio"] = side / target_size
    if sides != [target_size] and not allow_mismatch:
        raise ValueError(
            f"the source {source_name} was trained at image size {shape_text(source_shape)} but "
            f"the noise GAN renders {target_size} "
            f"(model.init_args.generator.init_args.image_size), so the "
            f"transferred filters would see anatomy at another scale: train the CycleGAN at size "
            f"{target_size} (data.init_args.size={target_size}), or pass "
            f"--allow_scale_mismatch true to transfer anyway (the summary records the ratio)"
        )
    return record


def check_backbone(here: BackboneSpec, source: BackboneSpec, source_name: str) -> None:
    """Refuse a noise generator whose backbone knobs differ from the source's, naming each."""
    if here.spatial_dims != source.spatial_dims:
        raise ValueError(
            f"the source {source_name} is {source.spatial_dims}D but the noise GAN is "
            f"{here.spatial_dims}D (spatial_dims)"
        )
    differences = here.diff(source, ignore=PARAMETERIZATION_KNOBS)
    if differences:
        knobs = {k: v for k, v in source.to_dict().items() if k not in PARAMETERIZATION_KNOBS}
        raise ValueError(
            f"the noise generator's backbone differs from the source {source_name}'s ('here' is "
            f"the noise GAN, 'there' the source): {'; '.join(differences)}. The backbone knobs "
            f"come from the source: set model.init_args.generator.init_args.backbone to {knobs}"
        )


@dataclass(frozen=True)
class CopiedTensor:
    source: str  # "g_t2_to_t1.trunk.blocks.0.conv1.weight"
    target: str  # "generator.trunk.blocks.0.conv1.weight"


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# The generator's knobs are checked before the keys (check_backbone), so a part that does not fit
# comes from a source network that is not what the strategy expects.
PLAN_FIX = (
    "start from a CycleGAN trained with this noise GAN's knobs (--source CKPT, the checkpoint "
    "of gan-init fit --config experiments/configs/cyclegan_2d.yaml or cyclegan_3d.yaml), or "
    "pick another --init_strategy"
)


@torch.no_grad()
def apply_plan(
    plan: TransferPlan, model: nn.Module, *, check_only: bool = False
) -> list[CopiedTensor]:
    """Copy every tensor the plan names into ``model``, all or nothing (``check_only``: run
    every check below, copy nothing, return []).

    Source generators are checked against the noise generator's backbone knobs first, then every
    key and shape of every part; only when all fit is anything written (effective weights, so
    equalized learning rate on either side is handled). Raises ``ValueError`` (knobs) or
    ``CheckpointError`` (keys, shapes) naming what does not fit.
    """
    generator = model.get_submodule("generator")
    for copy in plan.copies:
        if isinstance(copy.source, CycleGANGenerator) and copy.dst_prefix.startswith("generator."):
            check_backbone(generator.spec, copy.source.spec, copy.source_name)

    copies, parts, problems = [], [], []
    for copy in plan.copies:
        name = f"{_join(copy.source_name, copy.src_prefix)} -> {copy.dst_prefix}"
        try:
            target = model.get_submodule(copy.dst_prefix)
        except AttributeError:
            problems.append(f"{name}: the noise GAN has no module {copy.dst_prefix!r}")
            continue
        copies.append(copy)
        parts.append((name, sub_state(effective_state(copy.source), copy.src_prefix), target))
    copied_keys = copy_strict(
        parts,
        what="the source does not fit the noise GAN",
        fix=PLAN_FIX,
        problems=problems,
        check_only=check_only,
    )
    return [
        CopiedTensor(
            _join(_join(copy.source_name, copy.src_prefix), key), _join(copy.dst_prefix, key)
        )
        for copy, keys in zip(copies, copied_keys, strict=True)
        for key in keys
    ]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def frozen_now(
    rules: Iterable[FreezeRule], images_shown: int, level_reached_at: Mapping[int, int]
) -> list[str]:
    """Prefixes whose rule still holds: their level not reached yet, or fewer than ``images``
    images shown since it was."""
    held = []
    for rule in rules:
        reached = level_reached_at.get(rule.level)
        if rule.images is None or reached is None or images_shown < reached + rule.images:
            held.append(rule.prefix)
    return held


def set_frozen(model: nn.Module, rules: Iterable[FreezeRule], frozen: Iterable[str]) -> None:
    """``requires_grad`` False under the ``frozen`` prefixes, True under the other rule prefixes;
    parameters no rule names are left alone. A frozen parameter gets no gradient, so Adam skips
    it (no update, no weight decay, no moment update)."""
    ruled = [rule.prefix for rule in rules]
    frozen = list(frozen)
    for name, param in model.named_parameters():
        if any(_under(name, p) for p in ruled):
            param.requires_grad_(not any(_under(name, p) for p in frozen))


def transfer_summary(
    model: nn.Module,
    copied: Iterable[CopiedTensor],
    frozen: Iterable[str],
) -> dict[str, Any]:
    """Per part (``SUMMARY_PARTS``): tensors and parameters in total, copied, left at init,
    frozen. ``tensors`` counts state_dict entries, ``parameters`` their elements."""
    state = model.state_dict()
    params = dict(model.named_parameters())
    copied_keys = {c.target for c in copied}
    frozen = list(frozen)
    fields = [f"{kind}{unit}" for kind in ("", "copied_", "init_", "frozen_")
              for unit in ("tensors", "parameters")]  # fmt: skip
    parts: dict[str, dict[str, int]] = {}
    for part, prefix in SUMMARY_PARTS.items():
        row = dict.fromkeys(fields, 0)
        for key in (k for k in state if _under(k, prefix)):
            kinds = ["", "copied_" if key in copied_keys else "init_"]
            if key in params and any(_under(key, p) for p in frozen):
                kinds.append("frozen_")
            for kind in kinds:
                row[f"{kind}tensors"] += 1
                row[f"{kind}parameters"] += state[key].numel()
        parts[part] = row
    # The EMA copy of G and the level/alpha buffers are not counted: they are not initialization.
    parts["total"] = {f: sum(row[f] for row in parts.values()) for f in fields}
    return parts


def summary_table(summary: Mapping[str, Any]) -> str:
    """The summary as a fixed-width text table (one line per part)."""
    head = f"{'part':<14}{'tensors':>8}{'params':>11}{'copied':>16}{'at init':>16}{'frozen':>16}"
    lines = [head]
    for part, row in summary["parts"].items():
        cells = [
            f"{row[f'{k}_tensors']} ({row[f'{k}_parameters']})"
            for k in ("copied", "init", "frozen")
        ]
        lines.append(
            f"{part:<14}{row['tensors']:>8}{row['parameters']:>11}"
            + "".join(f"{c:>16}" for c in cells)
        )
    return "\n".join(lines)
