"""Start the noise GAN from a CycleGAN: the weight-transfer callback (docs/architecture.md,
"Init strategies").

At fit start the init strategy's tensors are copied into the ``ProgressiveGAN`` (strictly, as
effective weights), the EMA generator restarts from them, and a summary (per part: tensors and
parameters copied, left at init, frozen) goes to the console, every logger and
``transfer_summary.json`` in the run's log directory. A resumed fit transfers nothing: Lightning
has restored the weights before ``on_fit_start``; only the freeze state, which a checkpoint does not
hold (``requires_grad`` is not saved), is re-applied from this callback's own state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from gan_init.core.seeding import run_seed
from gan_init.runs import TRANSFER_SUMMARY
from gan_init.transfer.source import TransferSource
from gan_init.transfer.strategies import INIT_STRATEGIES, FreezeRule, check_strategy
from gan_init.transfer.transfer import (
    UNKNOWN,
    apply_plan,
    check_scale,
    frozen_now,
    make_plan,
    release_points,
    set_frozen,
    summary_table,
    transfer_summary,
)

SUMMARY_FILE = TRANSFER_SUMMARY  # gan_init.runs


def _check_freeze_images(value: int | None) -> int | None:
    if value is not None and int(value) < 0:
        raise ValueError(f"freeze_images={value}: expected >= 0 (or leave it out: freeze_fraction)")
    return None if value is None else int(value)


def _check_freeze_fraction(value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"freeze_fraction={value}: expected 0 <= fraction < 1 (a share of each frozen part's "
            "active images, so it is released before the schedule ends), e.g. --freeze_fraction 0.25"
        )
    return float(value)


class WeightTransfer(Callback):
    """Initialize a ``ProgressiveGAN`` by an init strategy at fit start.

    Args:
        init_strategy: a name from ``gan_init.transfer.strategies.INIT_STRATEGIES`` (``scratch``,
            ``cyclegan``, ``cyclegan_frozen``, ``cyclegan_g_and_d``, ``cyclegan_untrained``,
            ``cyclegan_shuffled``, ``cyclegan_t1_to_t2``).
        source: a gan-init CycleGAN checkpoint or a canonical CycleGAN generator file.
        discriminator_source: the T1 discriminator file when ``source`` has none (a canonical
            ``latest_net_D_B.pth``, for ``cyclegan_g_and_d``).
        freeze_images: images shown during which ``cyclegan_frozen`` keeps the transferred weights
            frozen: an absolute length that overrides ``freeze_fraction``; None: the fraction.
        freeze_from_level: in ``full`` growth, count ``freeze_images`` from when each part's level
            is reached (the part is idle before), not from the start.
        seed: seed of a freshly initialized source (``cyclegan_untrained``) and of the
            permutations of ``cyclegan_shuffled``; None: the run's seed
            (``gan_init.core.seeding.run_seed``). Every rank uses the same one.
        freeze_fraction: ``cyclegan_frozen`` keeps each transferred part frozen for this fraction
            of its active images (from when its level is first reached to the end of the
            schedule the ``ProgressiveSchedule`` set on the model, ``image_schedule``), so it is
            released inside any budget; in [0, 1).
        allow_scale_mismatch: transfer from a CycleGAN trained at another image size than the
            noise GAN renders (refused otherwise); the summary records ``scale_ratio``.
    """

    def __init__(
        self,
        init_strategy: str = "scratch",
        source: str | None = None,
        discriminator_source: str | None = None,
        freeze_images: int | None = None,
        freeze_from_level: bool = True,
        seed: int | None = None,
        freeze_fraction: float = 0.25,
        allow_scale_mismatch: bool = False,
    ) -> None:
        self.init_strategy = check_strategy(init_strategy)
        self.source = source
        self.discriminator_source = discriminator_source
        self.freeze_images = _check_freeze_images(freeze_images)
        self.freeze_fraction = _check_freeze_fraction(freeze_fraction)
        self.freeze_from_level = freeze_from_level
        self.seed = seed
        self.allow_scale_mismatch = bool(allow_scale_mismatch)
        # What a checkpoint of this callback holds (state_dict), so a resumed run keeps it.
        self.rules: list[FreezeRule] = []
        self.level_reached_at: dict[int, int] = {}
        self.summary: dict[str, Any] | None = None
        self.released: list[str] = []  # prefixes whose release has been reported
        self._restored = False
        self._restored_strategy: str | None = None

    # ---- configuration -------------------------------------------------------------------------

    def configure(
        self,
        init_strategy: str | None = None,
        source: str | None = None,
        freeze_images: int | None = None,
        freeze_fraction: float | None = None,
        allow_scale_mismatch: bool | None = None,
    ) -> WeightTransfer:
        """Override the settings that are not None (the command line's shortcut flags)."""
        if init_strategy is not None:
            self.init_strategy = check_strategy(init_strategy)
        if source is not None:
            self.source = source
        if freeze_images is not None:
            self.freeze_images = _check_freeze_images(freeze_images)
        if freeze_fraction is not None:
            self.freeze_fraction = _check_freeze_fraction(freeze_fraction)
        if allow_scale_mismatch is not None:
            self.allow_scale_mismatch = bool(allow_scale_mismatch)
        return self

    def _seed(self) -> int:
        if self.seed is not None:
            return int(self.seed)
        return run_seed()

    def _source(self, spatial_dims: int) -> TransferSource | None:
        if self.source is None or not INIT_STRATEGIES.meta(self.init_strategy)["uses_source"]:
            return None
        return TransferSource(
            self.source, spatial_dims, discriminator_path=self.discriminator_source
        )

    def _check_scale(
        self, source: TransferSource | None, pl_module: LightningModule, warn: bool = False
    ) -> dict[str, Any]:
        """The image size the source was trained at against the noise GAN's output size: a
        mismatch raises (unless ``allow_scale_mismatch``); returns the summary's scale keys."""
        if source is None:
            return {}
        shape, spacing = source.trained_at()
        scale = check_scale(
            shape, pl_module.generator.resolutions[-1], str(self.source),
            allow_mismatch=self.allow_scale_mismatch, source_spacing=spacing,
        )  # fmt: skip
        if warn and scale["source_image_size"] == UNKNOWN:
            rank_zero_warn(
                f"WeightTransfer: {self.source} does not record the image size it was trained "
                f"at (a canonical CycleGAN file?); transferring to size "
                f"{scale['target_image_size']} unchecked (summary: source_image_size unknown)"
            )
        return scale

    def check(self, pl_module: LightningModule) -> None:
        """Load the source and plan the transfer into ``pl_module`` without changing it: a
        missing, unreadable, wrong-kind, wrong-dims, wrong-width or wrong-size source raises here
        (a ``ValueError`` naming it), before a run starts."""
        source = self._source(pl_module.spatial_dims)
        # The freeze length needs the schedule (known at fit start); it cannot make a copy fail.
        plan = make_plan(
            self.init_strategy, pl_module, source, freeze_images=self.freeze_images or 1,
            freeze_from_level=self.freeze_from_level, seed=self._seed(),
        )  # fmt: skip
        apply_plan(plan, pl_module, check_only=True)  # kind, dims and knobs first
        self._check_scale(source, pl_module)

    # ---- hooks ---------------------------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not all(hasattr(pl_module, a) for a in ("generator", "discriminator", "reset_ema")):
            raise TypeError(
                f"WeightTransfer starts a noise GAN (gan_init.models.ProgressiveGAN); the model "
                f"is a {type(pl_module).__name__}. Remove the callback (or --init_strategy) "
                "from this run"
            )

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path is not None:
            self._resume(trainer, pl_module)
            return
        if self.source is not None and not INIT_STRATEGIES.meta(self.init_strategy)["uses_source"]:
            rank_zero_warn(
                f"WeightTransfer: init_strategy {self.init_strategy!r} ignores source={self.source}"
            )
        # Every rank reads the same file (or seed), so every rank ends with the same weights.
        source = self._source(pl_module.spatial_dims)
        scale = self._check_scale(source, pl_module, warn=True)
        schedule = pl_module.image_schedule  # set by a ProgressiveSchedule at setup
        level_starts = None if schedule is None else schedule.level_starts
        total = None if schedule is None else schedule.total_images
        plan = make_plan(
            self.init_strategy, pl_module, source, freeze_images=self.freeze_images,
            freeze_from_level=self.freeze_from_level, seed=self._seed(),
            freeze_fraction=self.freeze_fraction, level_starts=level_starts, total_images=total,
        )  # fmt: skip
        copied = apply_plan(plan, pl_module)
        pl_module.reset_ema()  # the EMA generator starts from the transferred weights
        self.rules = list(plan.freeze)
        self.level_reached_at = {}
        self.released = []
        frozen = self._apply_freeze(pl_module)
        self.summary = {
            "init_strategy": self.init_strategy,
            "source": str(self.source) if source is not None else None,
            "discriminator_source": self.discriminator_source,
            "grow": pl_module.generator.grow,
            "backbone": pl_module.generator.spec.to_dict(),
            **scale,
            "copies": [
                {"from": f"{c.source_name}.{c.src_prefix}", "to": c.dst_prefix} for c in plan.copies
            ],
            "freeze": [rule.to_dict() for rule in self.rules],
            "freeze_images": self.freeze_images,
            "freeze_fraction": None if self.freeze_images is not None else self.freeze_fraction,
            "release": release_points(self.rules, level_starts),
            "schedule_total_images": total,
            "parts": transfer_summary(pl_module, copied, frozen),
            "tensors": [{"from": c.source, "to": c.target} for c in copied],
        }
        pl_module.transfer_summary = self.summary  # what the diagnostics read
        self._report(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.rules:
            return
        images = pl_module.images_shown
        for level in range(pl_module.generator.current_level + 1):
            self.level_reached_at.setdefault(level, images)
        frozen = self._apply_freeze(pl_module)
        pl_module.log("transfer/frozen", float(bool(frozen)), on_step=True, on_epoch=False)
        for rule in self.rules:
            if rule.prefix not in frozen and rule.prefix not in self.released:
                self.released.append(rule.prefix)
                rank_zero_info(
                    f"WeightTransfer: released {rule.prefix} at {images} images shown "
                    f"({rule.images} images after level {rule.level} was reached at "
                    f"{self.level_reached_at.get(rule.level)})"
                )

    # ---- resume ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "init_strategy": self.init_strategy,
            "source": self.source,
            "freeze": [rule.to_dict() for rule in self.rules],
            "level_reached_at": {str(k): v for k, v in self.level_reached_at.items()},
            "released": list(self.released),
            "summary": self.summary,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = True
        self._restored_strategy = state_dict.get("init_strategy")
        self.rules = [FreezeRule(**rule) for rule in state_dict.get("freeze", [])]
        self.level_reached_at = {
            int(k): int(v) for k, v in state_dict.get("level_reached_at", {}).items()
        }
        self.released = list(state_dict.get("released", []))
        self.summary = state_dict.get("summary")

    def _resume(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.transfer_summary = self.summary  # restored with this callback's state
        if not self._restored:
            self.rules, self.level_reached_at = [], {}
            rank_zero_warn(
                f"WeightTransfer: resuming from {trainer.ckpt_path}, which holds no weight-transfer "
                "state: nothing transferred, nothing frozen"
            )
            return
        if self._restored_strategy != self.init_strategy:
            rank_zero_warn(
                f"WeightTransfer: init_strategy {self.init_strategy!r} given, but the resumed run "
                f"started with {self._restored_strategy!r}; its weights and freeze plan are kept"
            )
        frozen = self._apply_freeze(pl_module)
        rank_zero_info(
            f"WeightTransfer: resumed from {trainer.ckpt_path}: nothing transferred (the weights "
            f"come from the checkpoint); freeze state re-applied, frozen now: {frozen or 'none'}"
        )

    # ---- freezing and reporting ----------------------------------------------------------------

    def _apply_freeze(self, pl_module: LightningModule) -> list[str]:
        frozen = frozen_now(self.rules, pl_module.images_shown, self.level_reached_at)
        set_frozen(pl_module, self.rules, frozen)
        return frozen

    def _report(self, trainer: Trainer) -> None:
        # trainer.log_dir broadcasts from rank 0: every rank must ask, or rank 0 waits forever.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero or self.summary is None:
            return
        s = self.summary
        where = f" from {s['source']}" if s["source"] else ""
        copies = ", ".join(f"{c['from']} -> {c['to']}" for c in s["copies"]) or "none"
        rank_zero_info(
            f"WeightTransfer: init strategy {s['init_strategy']!r}{where} (grow {s['grow']})\n"
            f"  copies: {copies}\n"
            + (
                f"  scale: source trained at {s['source_image_size']}, noise GAN renders "
                f"{s['target_image_size']} (ratio {s['scale_ratio']})\n"
                if "scale_ratio" in s
                else ""
            )
            + "".join(
                f"  frozen: {r['prefix']} until {r['images']} images after level {r['level']}"
                f" (release at {p['release_at_images']} images shown)\n"
                for r, p in zip(s["freeze"], s["release"])
            )
            + summary_table(s)
        )
        flat: dict[str, Any] = {
            "transfer/init_strategy": s["init_strategy"],
            "transfer/source": s["source"] or "none",
        }
        for part, row in s["parts"].items():
            for key, value in row.items():
                flat[f"transfer/{part}/{key}"] = value
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)
            if isinstance(logger, WandbLogger):
                columns = ["part", *next(iter(s["parts"].values()))]
                rows = [[part, *row.values()] for part, row in s["parts"].items()]
                logger.log_table("transfer/summary", columns=columns, data=rows)
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / SUMMARY_FILE).write_text(json.dumps(s, indent=2) + "\n")
