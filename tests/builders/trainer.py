"""A quiet one-device CPU trainer for tests."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


def cpu_trainer(
    root: Path, max_steps: int = -1, callbacks: list | None = None, **kwargs
) -> pl.Trainer:
    """One CPU device, quiet, no logger, checkpoints or sanity check unless ``kwargs`` say so.
    Lightning counts two optimizer steps (D, G) per GAN batch: ``max_steps = 2 * batches``."""
    defaults = dict(
        default_root_dir=root, max_steps=max_steps, callbacks=callbacks, accelerator="cpu",
        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
