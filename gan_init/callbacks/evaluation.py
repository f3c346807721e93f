"""Periodic evaluation of a noise GAN against a fixed real set, with images shown as x-axis.

Every ``every_n_images`` images shown (counted over all ranks) the cheap ``metrics`` run, every
``costly_every_n_images`` the ``costly_metrics`` too, and all of them once more at the end of
fitting, whose values go to ``<log_dir>/metrics_final.json``. Samples come from the EMA generator
at its current output resolution; while it is below full resolution the real set is
average-pooled to the same size (as the discriminator sees real images) and
``eval/resolution`` says which size was compared.

Real sets: samples are compared with the first ``n_real`` images of the test split
(``REFERENCE_SPLIT``); the CycleGAN stage picks its epoch on the validation split, so the images
that chose the transferred weights never judge them.

Resolutions: every value is logged under its output resolution (``eval/at<res>/<metric>``) and,
at the data's full resolution, also as ``eval/full/<metric>``; values at different resolutions
have different scales and are never averaged together. The primary endpoint
``eval/full/swd_mean`` is the mean SWD of the full-resolution evaluations from
``endpoint_from_images`` images on (a window every growth mode reaches at full resolution).

The noise floor: once per fit (at its start) the ``noise_floor`` metrics compare real sets of the
evaluation's size (``floor_splits`` disjoint sets of ``n_samples`` validation images in place of
the samples) with the reference, at the data's full resolution; logged as ``eval/<key>_floor``
(mean over splits) and ``eval/<key>_floor_sd`` (their SD, with two splits or more), also in
``metrics_final.json``. It is an offset, what a generator that matches the data distribution
would score, not a noise level.

Failure: at the end a ``FailureRule`` labels the run ``none``, ``diverged``, ``collapsed`` or
``not_converged`` (``failure`` in ``metrics_final.json``, ``eval/failure_code`` its index in
``FAILURES``).

Cost: features are measured once per image (``CachedFeatures``: the floor's real set is the
final metrics' real set, memorization reuses FID's features) and the fixed real sets' features
are kept on disk (``feature_cache``) for resumed runs, other runs on the same data and
``gan-init evaluate``. The callback times itself: ``time/eval_seconds`` (cumulative, with every
evaluation) and at the end ``time/fit_seconds`` and ``time/eval_share`` (evaluation seconds over
fit seconds, this callback's whole work included), also under ``time`` in
``metrics_final.json``; a resumed run carries both clocks over in its state.

Under DDP each rank samples ``n_samples / world_size`` images with its own seed and takes its
share of the real set; the torchmetrics states sync at ``compute()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import Tensor

from gan_init.core.assets import cache_dir
from gan_init.core.files import write_json
from gan_init.core.registry import check_choice
from gan_init.metrics.evaluate import (
    ALL_METRICS,
    FEATURE_METRICS,
    evaluate_samples,
)
from gan_init.metrics.feature_cache import CachedFeatures
from gan_init.metrics.features import SLICES_PER_AXIS, load_feature_extractor
from gan_init.metrics.swd import NHOOD_SIZE
from gan_init.runs import METRICS_FINAL

# Metrics whose noise floor is defined: distances between two sets (not a set's own diversity,
# nor memorization, which needs the training set).
FLOOR_METRICS = ("swd", "fid", "kid", "pr")


def _is_level(key: str) -> bool:
    """A per-level value of one evaluation (SWD's pyramid levels ``swd_<res>``, the floors)."""
    return key.startswith("swd_") or key.endswith("_floor") or "/" in key


# A run's failure label, decided at the end of fitting by ``FailureRule`` (in this order).
FAILURES = ("none", "diverged", "collapsed", "not_converged")
# The real sets: the evaluation compares samples with ``REFERENCE_SPLIT`` images, the noise floor
# ``FLOOR_SPLIT`` images with the same reference. The CycleGAN stage selects its epoch on
# validation images, so the noise GAN's reference is the test split: no image that chose the
# transferred weights is one the transfer is then judged against.
REFERENCE_SPLIT = "test"
FLOOR_SPLIT = "val"


@dataclass(frozen=True)
class FailureRule:
    """When a run counts as failed, fixed before any run (the configs set it, for every arm).

    ``diverged``: the stability watch stopped it (non-finite or exploding losses), or its samples
    are not finite. ``collapsed``: the samples' mean pairwise MS-SSIM exceeds the real images' by
    more than ``collapse_msssim_margin`` (samples more alike than real images: mode collapse).
    ``not_converged``: the final full-resolution SWD is above ``not_converged_swd``, or the run
    never evaluated at full resolution. A rule left at None is not applied.
    """

    collapse_msssim_margin: float | None = None
    not_converged_swd: float | None = None

    def label(self, final: dict[str, float], diverged: bool) -> str:
        if diverged or final.get("nonfinite_samples", 0.0) > 0:
            return "diverged"
        margin = self.collapse_msssim_margin
        fake, real = final.get("msssim_fake"), final.get("msssim_real")
        if margin is not None and fake is not None and real is not None and fake > real + margin:
            return "collapsed"
        if self.not_converged_swd is not None:
            swd = final.get("full/swd", math.nan)
            if not math.isfinite(swd) or swd > self.not_converged_swd:
                return "not_converged"
        return "none"

    def to_dict(self) -> dict[str, float | None]:
        return {
            "collapse_msssim_margin": self.collapse_msssim_margin,
            "not_converged_swd": self.not_converged_swd,
        }


def run_dir(trainer: Trainer) -> Path:
    """Where a run's files go: the logger's directory, else ``default_root_dir``."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def resize_to(images: Tensor, size: Sequence[int]) -> Tensor:
    """Average-pool ``[N, C, *S]`` to ``size`` (area resampling; identity when equal)."""
    if tuple(images.shape[2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="area")


class EvaluationCallback(Callback):
    """Evaluate the generator every so many images shown; log ``eval/<metric>``.

    Logged (with ``progress/images_shown``, at the trainer's global step): ``eval/swd``,
    ``eval/swd_<res>``, ``eval/fid``, ``eval/kid``, ``eval/kid_std``, ``eval/precision``,
    ``eval/recall``, ``eval/msssim_fake``, ``eval/msssim_real``, ``eval/memo_fraction``,
    ``eval/memo_nn_dist``, ``eval/memo_fraction_feat`` (those chosen), ``eval/resolution``,
    and once per fit the noise floor ``eval/swd_floor`` (``eval/swd_<res>_floor``, and
    ``eval/<key>_floor`` of any other ``noise_floor`` metric);
    only ``eval/nonfinite_samples`` = 1 when the generator returns NaN/inf (a diverged run).
    The values also enter ``trainer.callback_metrics`` (for checkpoint monitors and sweeps).
    Timing: ``time/eval_seconds``, and at the end ``time/fit_seconds``, ``time/eval_share``.

    ``slices_per_axis``: 3D Inception features (2.5D), slices per axis. ``feature_bf16``: the
    Inception network under bf16 autocast. ``feature_cache``: folder of the real sets' features
    (``auto``: ``<GAN_INIT_DATA or ~/.cache/gan-init>/features``; null: in memory only).
    """

    def __init__(
        self,
        every_n_images: int = 50_000,
        metrics: Sequence[str] = ("swd",),
        costly_every_n_images: int = 500_000,
        costly_metrics: Sequence[str] = ("fid", "kid", "pr"),
        final_metrics: Sequence[str] | None = None,
        n_samples: int = 256,
        n_real: int = 256,
        n_train: int = 256,
        seed: int = 0,
        feature: str | None = "inception",
        save_pairs: bool = True,
        noise_floor: Sequence[str] = ("swd",),
        slices_per_axis: int = SLICES_PER_AXIS,
        feature_bf16: bool = False,
        feature_cache: str | None = "auto",
        endpoint_from_images: int = 0,
        floor_splits: int = 1,
        collapse_msssim_margin: float | None = None,
        not_converged_swd: float | None = None,
    ) -> None:
        super().__init__()
        for name in (*metrics, *costly_metrics, *(final_metrics or ())):
            check_choice("metric", name, list(ALL_METRICS))
        for name in noise_floor:
            check_choice("noise_floor metric", name, list(FLOOR_METRICS))
        self.every_n_images = int(every_n_images)
        self.costly_every_n_images = int(costly_every_n_images)
        self.metrics = tuple(metrics)
        self.costly_metrics = tuple(costly_metrics)
        self.final_metrics = tuple(final_metrics or dict.fromkeys((*metrics, *costly_metrics)))
        self.n_samples = n_samples
        self.n_real = n_real
        self.n_train = n_train
        self.seed = seed
        self.feature = feature
        self.save_pairs = save_pairs
        self.noise_floor = tuple(noise_floor)
        self.slices_per_axis = int(slices_per_axis)
        self.feature_bf16 = bool(feature_bf16)
        self.feature_cache = feature_cache
        self.floor: dict[str, float] = {}
        self.next_cheap = self.every_n_images
        self.next_costly = self.costly_every_n_images
        self.last: dict[str, float] = {}
        # (images shown, SWD) of every evaluation at the data's full resolution: the sweeps'
        # primary endpoint's curve (its mean from ``endpoint_from_images`` on: eval/full/swd_mean).
        self.full_curve: list[tuple[int, float]] = []
        self.endpoint_from_images = int(endpoint_from_images)
        if int(floor_splits) < 1:
            raise ValueError(f"floor_splits={floor_splits}: expected at least 1 (e.g. 8)")
        self.floor_splits = int(floor_splits)
        self.failure_rule = FailureRule(collapse_msssim_margin, not_converged_swd)
        self._extractor: CachedFeatures | None = None
        self._real_cache: dict[tuple[int, ...], tuple[Tensor, Tensor | None]] = {}
        self._full: int | None = None
        # Wall-clock seconds of this callback's work and of the fit (earlier attempts included).
        self.eval_seconds = 0.0
        self.fit_seconds_before = 0.0
        self._fit_start: float | None = None
        self._eval_start: float | None = None

    # ---- state (a resumed run keeps its schedule)

    def state_dict(self) -> dict[str, Any]:
        return {
            "next_cheap": self.next_cheap,
            "next_costly": self.next_costly,
            "full_curve": [list(point) for point in self.full_curve],
            "eval_seconds": self.eval_seconds,
            "fit_seconds": self.fit_seconds(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_cheap = int(state_dict["next_cheap"])
        self.next_costly = int(state_dict["next_costly"])
        self.full_curve = [(int(x), float(y)) for x, y in state_dict.get("full_curve", [])]
        self.eval_seconds = float(state_dict.get("eval_seconds", 0.0))
        self.fit_seconds_before = float(state_dict.get("fit_seconds", 0.0))

    # ---- clock

    def fit_seconds(self) -> float:
        """Wall-clock seconds of fitting so far (from this callback's ``on_fit_start``)."""
        running = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.fit_seconds_before + running

    def eval_seconds_now(self) -> float:
        running = 0.0 if self._eval_start is None else time.perf_counter() - self._eval_start
        return self.eval_seconds + running

    @contextmanager
    def _clock(self) -> Iterator[None]:
        """Count the enclosed work as evaluation time (not nested)."""
        self._eval_start = time.perf_counter()
        try:
            yield
        finally:
            self.eval_seconds += time.perf_counter() - self._eval_start
            self._eval_start = None

    # ---- schedule

    @staticmethod
    def _advance(threshold: int, step: int, shown: int) -> int:
        while threshold <= shown:
            threshold += step
        return threshold

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        shown = int(pl_module.images_shown)  # identical on every rank: a global count
        chosen: list[str] = []
        if self.every_n_images > 0 and shown >= self.next_cheap:
            chosen += self.metrics
            self.next_cheap = self._advance(self.next_cheap, self.every_n_images, shown)
        if self.costly_every_n_images > 0 and shown >= self.next_costly:
            chosen += self.costly_metrics
            self.next_costly = self._advance(self.next_costly, self.costly_every_n_images, shown)
        if chosen:
            with self._clock():
                self.evaluate(trainer, pl_module, list(dict.fromkeys(chosen)))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_start = time.perf_counter()
        if self.noise_floor:
            with self._clock():
                self.floor = self.measure_floor(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.final_metrics:
            return
        with self._clock():
            self.last = self.evaluate(trainer, pl_module, list(self.final_metrics), final=True)
            window = [v for x, v in self.full_curve if x >= self.endpoint_from_images]
            if window:
                # The sweeps' primary endpoint (gan_init.experiment.stats, ``fullres``): mean SWD
                # of the full-resolution evaluations from endpoint_from_images on; one number W&B
                # can optimize. Never a mean over resolutions (each has its own scale).
                self.last |= self._log(
                    trainer, pl_module, {"full/swd_mean": sum(window) / len(window)}
                )
            self.last |= self.floor
            folder = run_dir(trainer)  # on every rank: trainer.log_dir is a collective (DDP)
        diverged = float(trainer.callback_metrics.get("train/diverged", 0.0)) > 0
        failure = self.failure_rule.label(self.last, diverged)
        self._log(trainer, pl_module, {"failure_code": float(FAILURES.index(failure))})
        timing = self.timing()
        self._log_time(trainer, pl_module, timing)
        if trainer.is_global_zero:
            record = {
                "images_shown": int(pl_module.images_shown),
                "global_step": int(trainer.global_step),
                "metrics": self.last,
                "failure": failure,
                "failure_rule": self.failure_rule.to_dict(),
                "time": timing,
            }
            write_json(folder / METRICS_FINAL, record)

    def timing(self) -> dict[str, float]:
        """``eval_seconds``, ``fit_seconds`` and ``eval_share`` (their ratio) so far."""
        fit, spent = self.fit_seconds(), self.eval_seconds_now()
        return {
            "eval_seconds": spent,
            "fit_seconds": fit,
            "eval_share": min(1.0, spent / fit) if fit > 0 else 0.0,
        }

    # ---- evaluation

    def _real_set(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        size: tuple[int, ...],
        need_features: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """This rank's share of the fixed real set at ``size`` (and its features, cached)."""
        cached = self._real_cache.get(size)
        if cached is None or (need_features and cached[1] is None):
            real = trainer.datamodule.real_images(self.n_real, split=REFERENCE_SPLIT)
            real = real[trainer.global_rank :: trainer.world_size]
            real = resize_to(real.to(pl_module.device).float(), size)
            feats = None
            if need_features:
                feats = self._get_extractor(pl_module, real)(real, persist=True).double()
            cached = (real, feats)
            self._real_cache[size] = cached
        return cached

    @torch.no_grad()
    def measure_floor(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """The ``noise_floor`` metrics between two disjoint real sets of the evaluation's sizes
        (test images as the "samples", validation images as the reference), at the data's full
        resolution; logged as ``eval/<key>_floor``."""
        world, rank = trainer.world_size, trainer.global_rank
        n_local = -(-self.n_samples // world)
        splits = self.floor_splits
        every = trainer.datamodule.real_images(n_local * world * splits, split=FLOOR_SPLIT)
        size = tuple(every.shape[2:])
        metrics = list(self.noise_floor)
        if min(size) < NHOOD_SIZE:
            metrics = [m for m in metrics if m != "swd"]
        if not metrics:
            return {}
        need_features = any(m in FEATURE_METRICS for m in metrics)
        # The same real set (and features) as the final metrics at full resolution.
        real, real_feats = self._real_set(trainer, pl_module, size, need_features)
        extractor = self._get_extractor(pl_module, every) if need_features else None
        per_split: list[dict[str, float]] = []
        for k in range(splits):  # disjoint real sets of the evaluation's size, one reference
            test = every[k * n_local * world : (k + 1) * n_local * world]
            test = test[rank::world].to(pl_module.device).float()
            if extractor is not None:
                extractor(test, persist=True)  # the test set's features, kept on disk
            per_split.append(
                evaluate_samples(
                    test,
                    real,
                    None,
                    metrics,
                    feature=extractor,
                    real_features=real_feats,
                    seed=self.seed,
                )  # fmt: skip
            )
        floor = {}
        for key in per_split[0]:
            vals = torch.tensor([float(v[key]) for v in per_split], dtype=torch.float64)
            floor[f"{key}_floor"] = float(vals.mean())
            if splits > 1:
                floor[f"{key}_floor_sd"] = float(vals.std())  # over splits (n - 1)
        return self._log(trainer, pl_module, floor)

    def _get_extractor(self, pl_module: LightningModule, example: Tensor) -> CachedFeatures:
        if self._extractor is None:
            net = load_feature_extractor(
                self.feature,
                pl_module.spatial_dims,
                slices_per_axis=self.slices_per_axis,
                image_shape=tuple(example.shape[1:]),
                bf16=self.feature_bf16,
            )
            folder = self.feature_cache
            if folder == "auto":
                folder = cache_dir() / "features"
            self._extractor = CachedFeatures(net, directory=folder)
        return self._extractor.to(example.device).eval()

    @torch.no_grad()
    def evaluate(
        self, trainer: Trainer, pl_module: LightningModule, metrics: list[str], final: bool = False
    ) -> dict[str, float]:
        world, rank = trainer.world_size, trainer.global_rank
        n_local = -(-self.n_samples // world)
        fake = pl_module.sample(n_local, seed=self.seed + 7919 * rank, ema=True).float()
        size = tuple(fake.shape[2:])
        finite = trainer.strategy.reduce_boolean_decision(
            bool(torch.isfinite(fake).all()), all=True
        )
        if not finite:
            # A diverged generator: no metric is meaningful (and FID's eigensolver would fail).
            return self._log(trainer, pl_module, {"nonfinite_samples": 1.0, "resolution": size[-1]})
        if min(size) < NHOOD_SIZE:
            # SWD's 7x7 neighbourhoods do not fit the earliest levels (4 px): skip it there.
            metrics = [m for m in metrics if m != "swd"]
            if not metrics:
                return {}
        need_features = any(m in FEATURE_METRICS for m in metrics) or (
            "memo" in metrics and self.feature is not None
        )
        real, real_feats = self._real_set(trainer, pl_module, size, need_features)
        train = None
        extractor = self._get_extractor(pl_module, fake) if need_features else None
        if "memo" in metrics:
            train = trainer.datamodule.real_images(self.n_train, split="train")
            train = resize_to(train.to(fake.device).float(), size)
            if extractor is not None:
                extractor(train, persist=True)  # the training set's features, kept on disk
        pairs = None
        folder = run_dir(trainer) if final else None  # every rank: log_dir is a collective
        if final and self.save_pairs and "memo" in metrics and trainer.is_global_zero:
            pairs = folder / "memorization_closest_pairs.png"
        values = evaluate_samples(
            fake,
            real,
            train,
            metrics,
            feature=extractor,
            real_features=real_feats,
            seed=self.seed,
            pairs_path=pairs,
        )
        values["resolution"] = float(size[-1])
        return self._log(trainer, pl_module, values)

    def _full_side(self, trainer: Trainer) -> int:
        """The data's full resolution: the side of the reference images (the same request as the
        evaluation's real set, so the data module's cached set answers it)."""
        if self._full is None:
            reference = trainer.datamodule.real_images(self.n_real, split=REFERENCE_SPLIT)
            self._full = int(reference.shape[-1])
        return self._full

    def _log(self, trainer: Trainer, pl_module: LightningModule, values: dict[str, float]) -> dict:
        values = {k: float(v) for k, v in values.items()}
        if "resolution" in values:
            # Each output resolution under its own name (eval/at<res>/<metric>), and the data's
            # full resolution also as eval/full/<metric>: values at different resolutions have
            # different scales (SWD of noise against real: 728 at 8 px, 221 at 32 px) and are
            # never averaged together.
            res = int(values["resolution"])
            full = res == self._full_side(trainer)
            for key in [k for k in values if k != "resolution" and not _is_level(k)]:
                values[f"at{res}/{key}"] = values[key]
                if full:
                    values[f"full/{key}"] = values[key]
            if full and math.isfinite(values.get("swd", math.nan)):
                point = (int(pl_module.images_shown), values["swd"])
                if self.full_curve and self.full_curve[-1][0] == point[0]:
                    self.full_curve[-1] = (
                        point  # the final evaluation at the last periodic one's count
                    )
                else:
                    self.full_curve.append(point)
        logged = {f"eval/{k}": v for k, v in values.items()}
        for name, value in logged.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        if trainer.is_global_zero:
            row = {**logged, "progress/images_shown": float(pl_module.images_shown)}
            row["time/eval_seconds"] = self.eval_seconds_now()
            for logger in trainer.loggers:
                logger.log_metrics(row, step=trainer.global_step)
        return values

    def _log_time(self, trainer: Trainer, pl_module: LightningModule, timing: dict) -> None:
        logged = {f"time/{k}": float(v) for k, v in timing.items()}
        for name, value in logged.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        if trainer.is_global_zero:
            row = {**logged, "progress/images_shown": float(pl_module.images_shown)}
            for logger in trainer.loggers:
                logger.log_metrics(row, step=trainer.global_step)
