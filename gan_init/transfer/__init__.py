"""Weights in and out of checkpoints: safe loading, strict copies, canonical CycleGAN files, and
the transfer source."""

from gan_init.transfer.canonical import (
    canonical_discriminator_key_map,
    canonical_generator_key_map,
    discriminator_from_canonical,
    generator_from_canonical,
)
from gan_init.transfer.checkpoints import (
    CheckpointError,
    copy_params,
    copy_strict,
    effective_state,
    safe_load,
)
from gan_init.transfer.load import (
    checkpoint_info,
    load_cyclegan_discriminator,
    load_cyclegan_generator,
)
from gan_init.transfer.source import TransferSource, untrained_generator

__all__ = [
    "CheckpointError",
    "TransferSource",
    "canonical_discriminator_key_map",
    "canonical_generator_key_map",
    "checkpoint_info",
    "copy_params",
    "copy_strict",
    "discriminator_from_canonical",
    "effective_state",
    "generator_from_canonical",
    "load_cyclegan_discriminator",
    "load_cyclegan_generator",
    "safe_load",
    "untrained_generator",
]
