"""Exponential moving average of the generator (Karras et al. 2018, sec. 4.1 and appendix A.1:
samples come from a copy of G whose weights follow ``w_ema <- decay * w_ema + (1 - decay) * w``,
decay 0.999). The EMA network lives in the LightningModule (``generator_ema``), so checkpoints
carry it; this callback only updates it."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback, LightningModule, Trainer


class EMA(Callback):
    """Update ``pl_module.generator_ema`` from ``pl_module.generator`` after every step.

    At fit start the EMA is re-initialized from the generator's weights only when the run is not
    resumed from a checkpoint (a resumed run keeps the EMA it saved). A weight-transfer callback
    that changes G at fit start calls ``pl_module.reset_ema()`` itself.

    Args:
        decay: weight of the old EMA per step (0.999).
    """

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay}: expected 0 <= decay < 1")
        self.decay = decay

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path is None:
            pl_module.reset_ema()

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ema, net = pl_module.generator_ema, pl_module.generator
        ema_params = dict(ema.named_parameters())
        for name, param in net.named_parameters():
            ema_params[name].lerp_(param.detach(), 1.0 - self.decay)
        # Buffers (level, alpha, any norm statistics) are copied, not averaged.
        ema_buffers = dict(ema.named_buffers())
        for name, buf in net.named_buffers():
            ema_buffers[name].copy_(buf)
