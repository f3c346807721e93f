"""The init-strategy registry: how the noise GAN starts (docs/architecture.md, "Init strategies").

A strategy is a function and a name::

    @INIT_STRATEGIES.register("cyclegan")
    def cyclegan(ctx: StrategyContext) -> TransferPlan:
        return TransferPlan(copies=renderer_copies(ctx.source.generator("t2_to_t1"), "g_t2_to_t1"))

It returns a plan: which source tensors go to which noise-GAN tensors (``PartCopy``: a source
network, a prefix in it and a prefix in the ``ProgressiveGAN``; every tensor under the prefixes
is copied, strictly, by name), and which noise-GAN tensors are frozen and until when
(``FreezeRule``). Applying the plan (``gan_init.transfer.transfer.apply_plan``) and the freeze
schedule (``gan_init.callbacks.WeightTransfer``) live elsewhere, so a new strategy touches
nothing but this registry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gan_init.core.registry import Registry
from gan_init.core.seeding import stream_seed
from gan_init.transfer.source import TransferSource, untrained_generator

if TYPE_CHECKING:
    from gan_init.models.progressive import ProgressiveGAN
    from gan_init.networks.progressive import NoiseGenerator

# The parts both generators share (docs/architecture.md, "The generator backbone").
RENDERER = ("trunk", "decoder", "head")


@dataclass(frozen=True)
class PartCopy:
    """Copy every tensor under ``src_prefix`` of ``source`` to ``dst_prefix`` of the noise GAN.

    Attributes:
        source: the network read from (its effective weights are copied).
        source_name: what it is, for errors and the summary (``g_t2_to_t1``).
        src_prefix: module path in ``source`` (``trunk``).
        dst_prefix: module path in the ``ProgressiveGAN`` (``generator.trunk``).
    """

    source: nn.Module = field(repr=False, compare=False)
    source_name: str
    src_prefix: str
    dst_prefix: str


@dataclass(frozen=True)
class FreezeRule:
    """Keep the parameters under ``prefix`` (a module path in the ``ProgressiveGAN``) frozen until
    ``images`` images have been shown since the generator first reached ``level`` (level 0: since
    the start). ``images=None`` never releases them."""

    prefix: str
    images: int | None
    level: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TransferPlan:
    """What a strategy does: copies, in order, and freeze rules."""

    copies: list[PartCopy] = field(default_factory=list)
    freeze: list[FreezeRule] = field(default_factory=list)


@dataclass
class StrategyContext:
    """What a strategy may read.

    Attributes:
        model: the noise GAN being started.
        source: the source checkpoint(s), loaded lazily; None when no ``source`` was given.
        freeze_images: images shown while transferred weights stay frozen (``cyclegan_frozen``),
            an absolute length that overrides ``freeze_fraction``; None: use the fraction.
        freeze_from_level: in ``full`` growth, count ``freeze_images`` from when each frozen
            part's level is reached (it is idle before), not from the start. A fraction always
            counts from the part's level.
        seed: the run's seed: seeds any freshly initialized source network
            (``cyclegan_untrained``) and the permutations of ``cyclegan_shuffled``.
        freeze_fraction: the frozen length as a fraction of the part's active images (from when
            its level is first reached to the end of the schedule), so the release falls inside
            every budget.
        level_starts: images shown when each generator level is first reached (the
            ``ProgressiveSchedule``'s ``level_starts``); None without a schedule.
        total_images: images shown when the schedule ends; None without a schedule.
    """

    model: ProgressiveGAN
    source: TransferSource | None
    freeze_images: int | None = None
    freeze_from_level: bool = True
    seed: int = 0
    freeze_fraction: float = 0.25
    level_starts: list[int] | None = None
    total_images: int | None = None

    def freeze_length(self, level: int) -> int:
        """Images a part first used at ``level`` stays frozen: ``freeze_images`` when given, else
        ``freeze_fraction`` of the images from ``level_starts[level]`` to ``total_images``."""
        if self.freeze_images is not None:
            return int(self.freeze_images)
        if self.level_starts is None or self.total_images is None:
            raise ValueError(
                f"freeze_fraction={self.freeze_fraction} is a fraction of the progressive "
                "schedule, but trainer.callbacks holds no gan_init.callbacks.ProgressiveSchedule: "
                "add one, or give an absolute length (--freeze_images N)"
            )
        return int(self.freeze_fraction * (self.total_images - self.level_starts[level]))

    def require_source(self, strategy: str) -> TransferSource:
        if self.source is None:
            raise ValueError(
                f"init strategy {strategy!r} copies weights from a CycleGAN, but no source was "
                "given (--source CKPT, or WeightTransfer(source=...))"
            )
        return self.source


InitStrategy = Callable[[StrategyContext], TransferPlan]
# What the rest of the project needs to know about a strategy is metadata on its entry, so a new
# strategy touches nothing but this registry:
#   uses_source: the strategy reads a CycleGAN checkpoint (the pipeline trains stage 1 for it);
#   patch_stem_critic: it copies D_T1's stem, so the critic's top block takes the PatchGAN shape.
INIT_STRATEGIES: Registry[InitStrategy] = Registry(
    "init strategy", uses_source=True, patch_stem_critic=False
)


def check_strategy(name: str, option: str = "init_strategy") -> str:
    """``name`` if it is a registered init strategy, else a ``ValueError`` naming ``option``
    (``init_strategy``, ``--init_strategy``) with a did-you-mean and the known names. Every
    check of a strategy name (callback, command-line flags, pipeline, plan) is this one."""
    if name not in INIT_STRATEGIES:
        raise ValueError(f"{option}: {INIT_STRATEGIES.unknown_message(name)}")
    return name


def first_level_using(generator: NoiseGenerator, part: str) -> int:
    """The lowest generator level whose image goes through ``part`` (``trunk``,
    ``decoder.up{j}`` or ``head``). In ``stem``/``none`` growth everything runs from level 0; in
    ``full`` growth the trunk runs from the bottleneck level on and stage ``up{j}`` ``j`` levels
    later, and the head only at the last level (lower levels use their own to-image heads)."""
    if generator.grow != "full":
        return 0
    bottleneck = generator.n_stem - 1
    if part == "trunk":
        return bottleneck
    if part == "head":
        return generator.n_levels - 1
    if part.startswith("decoder.up"):
        return bottleneck + int(part.removeprefix("decoder.up"))
    raise ValueError(f"{part!r} is not a part of the shared renderer (trunk, decoder.up<j>, head)")


def renderer_parts(generator: NoiseGenerator) -> list[str]:
    """The shared renderer at freeze granularity: ``trunk``, ``decoder.up1`` .., ``head``."""
    stages = [f"decoder.up{j}" for j in range(1, generator.decoder.n_stages + 1)]
    return ["trunk", *stages, "head"]


def renderer_copies(source: nn.Module, source_name: str) -> list[PartCopy]:
    """Trunk, decoder and head of a CycleGAN generator into the noise generator."""
    return [PartCopy(source, source_name, part, f"generator.{part}") for part in RENDERER]


def renderer_freeze(ctx: StrategyContext) -> list[FreezeRule]:
    """Freeze the transferred renderer for ``ctx.freeze_length``, per part from its level."""
    generator = ctx.model.generator
    from_level = ctx.freeze_from_level or ctx.freeze_images is None
    rules = []
    for part in renderer_parts(generator):
        level = first_level_using(generator, part)
        rules.append(
            FreezeRule(f"generator.{part}", ctx.freeze_length(level), level if from_level else 0)
        )
    return rules


@torch.no_grad()
def shuffled_copy(network: nn.Module, parts: tuple[str, ...], seed: int) -> nn.Module:
    """A copy of ``network`` whose floating-point tensors under ``parts`` (parameters and
    buffers) each have their values randomly permuted over the whole tensor; ``network`` is left
    as it is. Each tensor's permutation comes from its own stream (``stream_seed(seed, 0, 0,
    "cyclegan_shuffled/<key>")``), so it depends on the seed and the tensor's name only: every
    rank, and a rerun with the seed, draws the same one."""
    shuffled = copy.deepcopy(network)
    for key, tensor in shuffled.state_dict().items():  # shares storage with the copy's tensors
        if not key.startswith(tuple(f"{p}." for p in parts)) or not tensor.is_floating_point():
            continue
        rng = torch.Generator().manual_seed(stream_seed(seed, 0, 0, f"cyclegan_shuffled/{key}"))
        perm = torch.randperm(tensor.numel(), generator=rng).to(tensor.device)
        tensor.copy_(tensor.flatten()[perm].view_as(tensor))
    return shuffled


def patch_stem_target(model: ProgressiveGAN, patchgan: nn.Module) -> str:
    """The progressive discriminator's block that mirrors the PatchGAN ``stem``
    (``discriminator.blocks.b<image side>``), or an error naming the knob that differs."""
    disc = model.discriminator
    knobs = getattr(patchgan, "knobs", {})
    problems = []
    if not disc.patch_stem:
        problems.append("the progressive discriminator has patch_stem=False (set it to true)")
    for knob in ("spatial_dims", "in_channels", "base_width"):
        if knob in knobs and knobs[knob] != disc.knobs[knob]:
            problems.append(
                f"{knob}: {disc.knobs[knob]!r} here, {knobs[knob]!r} in the source d_t1"
            )
    if problems:
        raise ValueError(
            "the T1 PatchGAN's stem cannot be copied into the progressive discriminator: "
            + "; ".join(problems)
        )
    return f"discriminator.blocks.b{disc.resolutions[-1]}"


# ---- the strategies of docs/architecture.md ----------------------------------------------------


@INIT_STRATEGIES.register("scratch", uses_source=False)
def scratch(ctx: StrategyContext) -> TransferPlan:
    """Random initialization: the baseline; nothing is copied."""
    return TransferPlan()


@INIT_STRATEGIES.register("cyclegan")
def cyclegan(ctx: StrategyContext) -> TransferPlan:
    """Trunk + decoder + head from the trained T2 -> T1 generator."""
    source = ctx.require_source("cyclegan")
    return TransferPlan(copies=renderer_copies(source.generator("t2_to_t1"), "g_t2_to_t1"))


@INIT_STRATEGIES.register("cyclegan_shuffled")
def cyclegan_shuffled(ctx: StrategyContext) -> TransferPlan:
    """The ``cyclegan`` copy with each tensor's values randomly permuted: a control that keeps
    each layer's weight statistics and drops its learned features.

    Per tensor, not per output channel: the values of a whole tensor (a convolution's weight,
    its bias; a batch norm's weight, bias, running mean and variance, each on its own) are
    shuffled together, so each copied tensor keeps its exact value distribution (its sorted
    values, hence its norm, mean and spread), which is what sets the scale of the signal through
    the renderer (the trained weights' norms are ~4x smaller than He init, issue 21); every
    filter, its spatial kernel and the pairing of inputs, outputs and biases become random, so
    what the CycleGAN learned is gone. A per-output-channel shuffle would keep each filter's
    norm, itself learned (which channels are strong or dead), and would need each layer's layout
    (transposed convolutions store ``[in, out, ...]``). Equalized-lr layers scale a whole tensor
    by one constant, so shuffling the stored values shuffles the effective ones. Integer buffers
    are copied as they are. The permutations follow the run's seed (``StrategyContext.seed``).
    """
    source = ctx.require_source("cyclegan_shuffled")
    shuffled = shuffled_copy(source.generator("t2_to_t1"), RENDERER, ctx.seed)
    return TransferPlan(copies=renderer_copies(shuffled, "shuffled g_t2_to_t1"))


@INIT_STRATEGIES.register("cyclegan_frozen")
def cyclegan_frozen(ctx: StrategyContext) -> TransferPlan:
    """As ``cyclegan``; the transferred weights are frozen for a fraction of each part's active
    images (``freeze_fraction``; or ``freeze_images`` images shown, in ``full`` growth counted
    from each part's level by default), then released."""
    source = ctx.require_source("cyclegan_frozen")
    return TransferPlan(
        copies=renderer_copies(source.generator("t2_to_t1"), "g_t2_to_t1"),
        freeze=renderer_freeze(ctx),
    )


@INIT_STRATEGIES.register("cyclegan_g_and_d", patch_stem_critic=True)
def cyclegan_g_and_d(ctx: StrategyContext) -> TransferPlan:
    """As ``cyclegan``, plus the T1 PatchGAN's stem into the progressive discriminator's
    highest-resolution block (``patch_stem=True``: the same 4x4 stride-2 convolution; the layers
    below differ in kernel and normalization, so only that one matches)."""
    source = ctx.require_source("cyclegan_g_and_d")
    copies = renderer_copies(source.generator("t2_to_t1"), "g_t2_to_t1")
    d_t1 = source.discriminator("t1")
    target = patch_stem_target(ctx.model, d_t1)
    copies.append(PartCopy(d_t1, "d_t1", "stem.conv", f"{target}.conv0"))
    return TransferPlan(copies=copies)


@INIT_STRATEGIES.register("cyclegan_untrained")
def cyclegan_untrained(ctx: StrategyContext) -> TransferPlan:
    """The ``cyclegan`` copy from a CycleGAN generator with the source's knobs that was never
    trained (the CycleGAN recipe's N(0, 0.02) init, seeded): separates learned weights from the
    init scheme. Without a source the noise GAN's own knobs are used."""
    if ctx.source is not None:
        generator = ctx.source.untrained_generator(ctx.seed)
    else:
        generator = untrained_generator(ctx.model.generator.spec, ctx.seed)
    return TransferPlan(copies=renderer_copies(generator, "untrained g_t2_to_t1"))


@INIT_STRATEGIES.register("cyclegan_t1_to_t2")
def cyclegan_t1_to_t2(ctx: StrategyContext) -> TransferPlan:
    """The ``cyclegan`` copy from the other generator (it renders T2): a control."""
    source = ctx.require_source("cyclegan_t1_to_t2")
    return TransferPlan(copies=renderer_copies(source.generator("t1_to_t2"), "g_t1_to_t2"))
