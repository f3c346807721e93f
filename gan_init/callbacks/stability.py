"""Divergence watch: stop a run whose losses blow up, cleanly, and record why.

After every training batch the logged losses and gradient norms are read from
``trainer.callback_metrics``. A non-finite loss or gradient norm, or ``|loss|`` above
``max_abs_loss`` (or a gradient norm above ``max_grad_norm``) for ``patience`` steps in a row,
sets the divergence flag: ``train/diverged`` goes to 1, ``<log_dir>/divergence.json`` records the
reason, step and images shown, checkpointing is frozen (so the diverged weights never overwrite
the checkpoints already written) and ``trainer.should_stop`` ends the run. Ranks agree on the
decision, so DDP runs stop together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from gan_init.callbacks.evaluation import run_dir
from gan_init.core.files import write_json
from gan_init.runs import DIVERGENCE


class StabilityCallback(Callback):
    """Sets ``train/diverged`` (0 or 1, every step) and stops a diverged run."""

    def __init__(
        self,
        losses: Sequence[str] = ("train/loss_g", "train/loss_d"),
        grad_norms: Sequence[str] = ("train/grad_norm_g", "train/grad_norm_d"),
        max_abs_loss: float = 1e5,
        max_grad_norm: float = math.inf,
        patience: int = 1,
    ) -> None:
        super().__init__()
        self.losses = tuple(losses)
        self.grad_norms = tuple(grad_norms)
        self.max_abs_loss = max_abs_loss
        self.max_grad_norm = max_grad_norm
        self.patience = patience
        self.diverged = False
        self.reason: str | None = None
        self._exploding_steps = 0

    def _check(self, metrics: dict[str, Any]) -> str | None:
        exploding = None
        for kind, names, limit in (
            ("loss", self.losses, self.max_abs_loss),
            ("gradient norm", self.grad_norms, self.max_grad_norm),
        ):
            for name in names:
                if name not in metrics:
                    continue
                value = float(metrics[name])
                if not math.isfinite(value):
                    return f"non-finite {kind} {name} = {value}"
                if abs(value) > limit and exploding is None:
                    exploding = f"exploding {kind}: |{name}| = {abs(value):.4g} > {limit:.4g}"
        self._exploding_steps = self._exploding_steps + 1 if exploding else 0
        if exploding and self._exploding_steps >= self.patience:
            return f"{exploding} for {self._exploding_steps} step(s)"
        return None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.diverged:
            return
        reason = self._check(trainer.callback_metrics)
        diverged = trainer.strategy.reduce_boolean_decision(reason is not None, all=False)
        pl_module.log("train/diverged", float(diverged), on_step=True, on_epoch=False)
        if not diverged:
            return
        self.diverged = True
        self.reason = reason or "another rank diverged"
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                # Freeze checkpointing: the weights are no longer worth keeping.
                callback.save_top_k = 0
                callback.save_last = False
        trainer.should_stop = True
        folder = run_dir(trainer)  # on every rank: trainer.log_dir is a collective under DDP
        if trainer.is_global_zero:
            record = {
                "reason": self.reason,
                "global_step": int(trainer.global_step),
                "images_shown": int(getattr(pl_module, "images_shown", -1)),
                "epoch": int(trainer.current_epoch),
                "values": {
                    k: float(v)
                    for k, v in trainer.callback_metrics.items()
                    if k in (*self.losses, *self.grad_norms) and isinstance(v, torch.Tensor)
                },
            }
            write_json(folder / DIVERGENCE, record)

    def state_dict(self) -> dict[str, Any]:
        return {"diverged": self.diverged, "reason": self.reason}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.diverged = bool(state_dict["diverged"])
        self.reason = state_dict["reason"]
