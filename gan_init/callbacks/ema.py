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
        warmup: use ``min(decay, (1 + t) / (10 + t))`` at optimizer step ``t`` (the
            ``num_updates`` rule of TensorFlow's ExponentialMovingAverage), so a short run's EMA
            is not dominated by the initial weights (0.999^300 = 0.74 of them after 300 steps);
            it reaches 0.999 after about 9,000 steps, so long runs are unaffected.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay}: expected 0 <= decay < 1")
        self.decay = decay
        self.warmup = warmup

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step)) if self.warmup else self.decay

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        pl_module.ema_active = True  # pictures of the run draw from generator_ema

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path is None:
            pl_module.reset_ema()

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ema, net = pl_module.generator_ema, pl_module.generator
        decay = self.decay_at(trainer.global_step)
        ema_params = dict(ema.named_parameters())
        for name, param in net.named_parameters():
            ema_params[name].lerp_(param.detach(), 1.0 - decay)
        # Buffers (level, alpha, any norm statistics) are copied, not averaged.
        ema_buffers = dict(ema.named_buffers())
        for name, buf in net.named_buffers():
            ema_buffers[name].copy_(buf)
