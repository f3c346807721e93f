"""Random streams that a resumed run continues exactly.

Training never draws from the global RNGs (their state is not in a checkpoint, and it differs by
rank). Every draw comes from a generator made for one step: its seed is a pure function of
``(seed, position, rank, purpose)``, where ``position`` is restored from the checkpoint (images
shown, global step). A run killed after a checkpoint and resumed draws the same numbers as the
run that was never stopped.

The run's seed (``run_seed``) is read in one place, by one rule: ``PL_GLOBAL_SEED`` when it is
set, else ``torch.initial_seed()``. ``seed_everything`` (LightningCLI's ``seed_everything:``, set
by every config and by the pipeline) writes ``PL_GLOBAL_SEED`` and seeds torch with the same
value before the model and the data module are built, so under ``gan-init fit`` both readings are
equal. The environment variable comes first because it is what every process of a run shares:
DDP ranks and dataloader workers inherit it, while a worker's ``torch.initial_seed()`` is its own.
Without ``seed_everything`` (a model or data module built by hand), torch's initial seed is what
the global generator started from (the last ``torch.manual_seed``, or torch's fixed default), so
the models' training streams, the data stream and the transfer's seeded controls still agree.
"""

from __future__ import annotations

import os
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


def run_seed_and_source() -> tuple[int, str]:
    """``(the run's seed, where it came from)``: ``PL_GLOBAL_SEED`` (set by ``seed_everything``),
    else ``torch.initial_seed()`` (module docstring)."""
    value = os.environ.get("PL_GLOBAL_SEED")
    if value is not None:
        return int(value), "run seed (seed_everything)"
    return torch.initial_seed(), "torch's initial seed (no seed_everything)"


def run_seed() -> int:
    """The run's seed: ``PL_GLOBAL_SEED`` (set by ``seed_everything``), else
    ``torch.initial_seed()``; every reader of the run's seed asks here."""
    return run_seed_and_source()[0]
