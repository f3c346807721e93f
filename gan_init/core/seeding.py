"""Random streams that a resumed run continues exactly.

Training never draws from the global RNGs (their state is not in a checkpoint, and it differs by
rank). Every draw comes from a generator made for one step: its seed is a pure function of
``(seed, position, rank, purpose)``, where ``position`` is restored from the checkpoint (images
shown, global step). A run killed after a checkpoint and resumed draws the same numbers as the
run that was never stopped.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def stream_seed(seed: int, position: int, rank: int, purpose: str) -> int:
    """A 63-bit seed, distinct for every ``(seed, position, rank, purpose)``."""
    words = [int(seed) & 0xFFFFFFFFFFFFFFFF, int(position), int(rank), zlib.crc32(purpose.encode())]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def step_generator(
    seed: int, position: int, rank: int, purpose: str, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator on ``device`` (a CUDA generator for CUDA tensors) seeded by ``stream_seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(seed, position, rank, purpose))
    return generator
