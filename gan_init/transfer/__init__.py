"""Weights in and out of checkpoints: safe loading, strict copies, canonical CycleGAN files."""

from gan_init.transfer.canonical import (
    canonical_discriminator_key_map,
    canonical_generator_key_map,
    discriminator_from_canonical,
    generator_from_canonical,
)
from gan_init.transfer.checkpoints import (
    CheckpointError,
    copy_params,
    effective_state,
    safe_load,
)
from gan_init.transfer.load import (
    checkpoint_info,
    load_cyclegan_discriminator,
    load_cyclegan_generator,
)

__all__ = [
    "CheckpointError",
    "canonical_discriminator_key_map",
    "canonical_generator_key_map",
    "checkpoint_info",
    "copy_params",
    "discriminator_from_canonical",
    "effective_state",
    "generator_from_canonical",
    "load_cyclegan_discriminator",
    "load_cyclegan_generator",
    "safe_load",
]
