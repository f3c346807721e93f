"""The progressive-growing schedule (Karras et al. 2018, sec. 3 and appendix A.1), counted in
images shown over all ranks.

Level ``l`` first fades in over ``fade_images[l]`` images (alpha 0 -> 1; level 0 has no fade),
then trains at alpha 1 for ``train_images[l]`` images. The schedule is a pure function of
``pl_module.images_shown`` (a buffer in the module's state_dict), so a resumed run continues at
exactly the level and alpha it stopped at.

The resolved schedule (an ``ImageSchedule``) is set on the model at setup
(``pl_module.image_schedule``), where the other callbacks read it (the weight transfer's freeze
budget, the progress line's images planned), as they read the EMA generator from the model.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_warn


def _per_level(name: str, value: int | Sequence[int], n_levels: int) -> list[int]:
    values = [int(value)] * n_levels if isinstance(value, int) else [int(v) for v in value]
    if len(values) == 1:
        values = values * n_levels
    if len(values) < n_levels:
        raise ValueError(
            f"{name}: {len(values)} values for a generator with {n_levels} levels "
            "(give one per level, or a single value for all)"
        )
    if any(v < 0 for v in values):
        raise ValueError(f"{name}={values}: expected non-negative image counts")
    return values


@dataclass(frozen=True)
class ImageSchedule:
    """A schedule resolved for a generator's levels, in images shown.

    ``fade[l]``: images of level ``l``'s fade-in (0 for level 0); ``bounds``: images shown when
    each level's fade-in starts, then the end of the run (``n_levels + 1`` values);
    ``batch_sizes``: per-level batch size, or None (the data module's)."""

    fade: tuple[int, ...]
    bounds: tuple[int, ...]
    batch_sizes: tuple[int, ...] | None = None

    @property
    def n_levels(self) -> int:
        return len(self.fade)

    @property
    def total_images(self) -> int:
        return self.bounds[-1]

    @property
    def level_starts(self) -> list[int]:
        """Images shown when each level is first reached (its fade-in begins; level 0 at 0);
        level ``l`` is active for ``total_images - level_starts[l]`` images (what a freeze
        fraction of ``cyclegan_frozen`` is a fraction of)."""
        return list(self.bounds[:-1])

    def progress_at(self, images: int) -> tuple[int, float]:
        """``(level, alpha)`` after ``images`` images shown."""
        level = min(bisect.bisect_right(self.bounds, images) - 1, self.n_levels - 1)
        into = images - self.bounds[level]
        fade = self.fade[level]
        alpha = 1.0 if fade == 0 or into >= fade else into / fade
        return level, alpha


class ProgressiveSchedule(Callback):
    """Drive ``level``/``alpha`` of G, EMA G and D, and the data module's ``batch_size``.

    Args:
        train_images: images at alpha 1 per level (one value per level, or one for all).
        fade_images: images of fade-in per level (level 0 ignores it).
        batch_size: global-per-rank batch size per level (None: leave the data module's).
        stop_when_done: stop training once the last level's images are shown (otherwise
            ``max_steps``/``max_epochs`` end the run and the last level continues).

    The data module's ``train_dataloader()`` must read ``self.batch_size`` each time it is called,
    and the trainer must reload dataloaders every epoch (``reload_dataloaders_every_n_epochs=1``)
    with short epochs: a new batch size takes effect at the next epoch.
    """

    def __init__(
        self,
        train_images: int | Sequence[int] = 20_000,
        fade_images: int | Sequence[int] = 20_000,
        batch_size: int | Sequence[int] | None = None,
        stop_when_done: bool = True,
    ) -> None:
        self.train_images = train_images
        self.fade_images = fade_images
        self.batch_size = batch_size
        self.stop_when_done = stop_when_done
        self.plan: ImageSchedule | None = None  # resolved by build()

    def build(self, n_levels: int) -> None:
        """Resolve the per-level lists for a generator with ``n_levels`` levels."""
        lengths = {
            name: len(v)
            for name, v in (("train_images", self.train_images), ("fade_images", self.fade_images))
            if not isinstance(v, int) and len(v) > 1
        }
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"train_images has {lengths['train_images']} values but fade_images "
                f"{lengths['fade_images']}: give one per level, or a single value for all"
            )
        written = max([n_levels, *lengths.values()])
        train = _per_level("train_images", self.train_images, written)
        fade = _per_level("fade_images", self.fade_images, written)
        # A schedule written for more levels (``grow: full``) also drives a generator with fewer
        # (``grow: stem`` or ``none``, whose levels are the full schedule's highest resolutions):
        # it keeps the last levels, and the images of the dropped ones go to the first kept level,
        # so every growth mode shows the same number of images (a fair comparison).
        dropped = len(train) - n_levels
        if dropped:
            budget = sum(train[: dropped + 1]) + sum(fade[1 : dropped + 1])
            train = [budget, *train[dropped + 1 :]]
            fade = fade[dropped:]
        fade[0] = 0
        batch_sizes = (
            None
            if self.batch_size is None
            else _per_level("batch_size", self.batch_size, n_levels)[-n_levels:]
        )
        # Start of each level's fade-in, in images shown; the schedule ends at bounds[-1].
        bounds = [0]
        for f, t in zip(fade, train):
            bounds.append(bounds[-1] + f + t)
        self.plan = ImageSchedule(
            tuple(fade), tuple(bounds), None if batch_sizes is None else tuple(batch_sizes)
        )

    @property
    def n_levels(self) -> int:
        return self.plan.n_levels

    @property
    def batch_sizes(self) -> list[int] | None:
        sizes = self.plan.batch_sizes
        return None if sizes is None else list(sizes)

    @property
    def total_images(self) -> int:
        return self.plan.total_images

    @property
    def bounds(self) -> list[int]:
        """Images shown when each level's fade-in starts, then the end of the run."""
        return list(self.plan.bounds)

    def level_starts(self, n_levels: int) -> list[int]:
        """Images shown when each level of a generator with ``n_levels`` levels is first reached
        (``ImageSchedule.level_starts``)."""
        self.build(n_levels)
        return self.plan.level_starts

    def progress_at(self, images: int) -> tuple[int, float]:
        """``(level, alpha)`` after ``images`` images shown."""
        return self.plan.progress_at(images)

    def _apply(self, trainer: Trainer, pl_module: LightningModule) -> None:
        level, alpha = self.plan.progress_at(pl_module.images_shown)
        pl_module.set_progress(level, alpha)
        datamodule = trainer.datamodule
        if self.plan.batch_sizes is not None and datamodule is not None:
            datamodule.batch_size = self.plan.batch_sizes[level]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.build(pl_module.generator.n_levels)
        pl_module.image_schedule = self.plan  # what the other callbacks read
        varies = self.batch_sizes is not None and len(set(self.batch_sizes)) > 1
        if varies and trainer.reload_dataloaders_every_n_epochs != 1:
            rank_zero_warn(
                "ProgressiveSchedule: batch size changes per level, but the trainer does not "
                "reload dataloaders every epoch (set reload_dataloaders_every_n_epochs: 1); "
                "the first level's batch size will be used throughout"
            )

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After a resume has restored images_shown, before the first dataloader is built.
        self._apply(trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._apply(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Leave the state matching images_shown (what a checkpoint saved now restores), and pick
        # the batch size for the next dataloader.
        self._apply(trainer, pl_module)
        if self.stop_when_done and pl_module.images_shown >= self.plan.total_images:
            trainer.should_stop = True
