"""``evaluate_samples``: one function computing the chosen metrics for a generated set against a
real reference set; the evaluation callback, the ``gan-init evaluate`` command and the tests all
use it. Features for FID, KID and precision/recall are extracted once and shared.

Under DDP every rank calls it with its own share of the samples; the torchmetrics states sync
at ``compute()``, so every rank returns the values for the pooled sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.kid import KernelInceptionDistance

from gan_init.core.registry import check_choice
from gan_init.metrics.diversity import MSSSIMDiversity
from gan_init.metrics.features import PrecomputedFeatures, load_feature_extractor
from gan_init.metrics.frechet import FrechetDistance
from gan_init.metrics.memorization import Memorization, save_closest_pairs
from gan_init.metrics.precision_recall import PrecisionRecall
from gan_init.metrics.swd import SlicedWassersteinDistance


@torch.no_grad()
def extract_features(extractor: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """``images: [N, C, *S] -> [N, F]`` (float64) in batches."""
    return torch.cat([extractor(chunk).double() for chunk in images.split(batch_size)])


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@dataclass
class _Setup:
    """What the metrics of one ``evaluate_samples`` call are built and read with."""

    seed: int
    kid_subset_size: int
    train: Tensor | None
    extractor: nn.Module | None
    pairs_path: str | Path | None
    identity: nn.Module | None = None  # features are computed once, then passed through
    n_pairs: int = 0  # min(#fake, #real) features on this rank


def _read_all(metric: Metric, setup: _Setup) -> dict[str, float]:
    return {k: float(v) for k, v in metric.compute().items()}


@dataclass(frozen=True)
class MetricEntry:
    """One metric: what it is updated with, how it is built, and how its values are read.

    ``inputs``: ``images`` (``[N, C, *S]``) or ``features`` (``[N, F]``, extracted once and
    shared by every feature metric). ``build(setup)`` returns a torchmetrics ``Metric`` updated
    with the real set (``real=True``) and the generated set (``real=False``); ``read(metric,
    setup)`` computes it as ``{key: float}``.
    """

    inputs: str
    build: Callable[[_Setup], Metric]
    read: Callable[[Metric, _Setup], dict[str, float]] = _read_all


def _build_kid(setup: _Setup) -> Metric:
    n_min = setup.n_pairs * _world_size()
    # Subsets of the whole set would all be the same set (a std of 0 that says nothing):
    # with few samples, draw half of them per subset so kid_std measures the spread.
    subset = min(setup.kid_subset_size, max(2, n_min // 2))
    with warnings.catch_warnings():  # its note that it keeps all features: we know
        warnings.simplefilter("ignore", UserWarning)
        return KernelInceptionDistance(feature=setup.identity, subset_size=subset)


def _read_kid(kid: Metric, setup: _Setup) -> dict[str, float]:
    # torchmetrics draws the KID subsets from the global RNG: seed it, leave it as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(setup.seed)
        kid_mean, kid_std = kid.compute()
    return {"kid": float(kid_mean), "kid_std": float(kid_std)}


def _read_memo(memo: Metric, setup: _Setup) -> dict[str, float]:
    out = _read_all(memo, setup)
    if setup.pairs_path is not None:
        save_closest_pairs(memo.generated, setup.train, memo.closest, setup.pairs_path)
    return out


# Output keys come in this order, whatever the order of the ``metrics`` asked for.
METRICS: dict[str, MetricEntry] = {
    "swd": MetricEntry("images", lambda setup: SlicedWassersteinDistance(seed=setup.seed)),
    "fid": MetricEntry(
        "features",
        lambda setup: FrechetDistance(),
        lambda fid, setup: {"fid": float(fid.compute())},
    ),
    "kid": MetricEntry("features", _build_kid, _read_kid),
    "pr": MetricEntry("features", lambda setup: PrecisionRecall(feature=setup.identity)),
    "msssim": MetricEntry("images", lambda setup: MSSSIMDiversity(seed=setup.seed)),
    "memo": MetricEntry(
        "images", lambda setup: Memorization(setup.train, feature=setup.extractor), _read_memo
    ),
}
ALL_METRICS = tuple(METRICS)
FEATURE_METRICS = tuple(name for name, entry in METRICS.items() if entry.inputs == "features")


@torch.no_grad()
def evaluate_samples(
    fake: Tensor,
    real: Tensor,
    train: Tensor | None = None,
    metrics: Sequence[str] = ("swd",),
    *,
    feature: nn.Module | str | None = "inception",
    real_features: Tensor | None = None,
    seed: int = 0,
    kid_subset_size: int = 1000,
    pairs_path: str | Path | None = None,
) -> dict[str, float]:
    """Metrics of generated ``fake: [N, C, *S]`` against real ``real: [M, C, *S]`` (both in
    [-1, 1], same shape per sample).

    ``metrics`` from ``ALL_METRICS``: ``swd`` (``swd``, ``swd_<res>``), ``fid``, ``kid``
    (``kid``, ``kid_std``), ``pr`` (``precision``, ``recall``), ``msssim`` (``msssim_fake``,
    ``msssim_real``), ``memo`` (``memo_fraction``, ``memo_nn_dist``, ``memo_fraction_feat``;
    needs ``train: [T, C, *S]``, with ``real`` as the held-out set). ``feature``: an extractor
    module or a spec for ``load_feature_extractor`` (built only if a metric needs it);
    ``real_features``: the real set's features when already extracted (a cache). With
    ``pairs_path``, the closest generated/training pairs are saved there as a PNG.
    """
    for name in metrics:
        check_choice("metric", name, list(ALL_METRICS))
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"generated samples {tuple(fake.shape[1:])} and real images {tuple(real.shape[1:])} "
            "differ in shape; resize the real set to the generator's resolution first"
        )
    if "memo" in metrics and train is None:
        raise ValueError("the memorization metric needs training images (train=...)")
    wanted = [name for name in METRICS if name in metrics]
    needs_features = any(METRICS[name].inputs == "features" for name in wanted)
    extractor: nn.Module | None = None
    if needs_features or ("memo" in wanted and feature is not None):
        image_shape = tuple(fake.shape[1:])
        extractor = load_feature_extractor(feature, fake.dim() - 2, image_shape=image_shape)
        extractor = extractor.to(fake.device).eval()
    setup = _Setup(seed, kid_subset_size, train, extractor, pairs_path)
    sets = {"images": (real, fake)}
    if needs_features:
        fake_f = extract_features(extractor, fake)
        real_f = extract_features(extractor, real) if real_features is None else real_features
        setup.identity = PrecomputedFeatures(fake_f.shape[1])
        setup.n_pairs = min(fake_f.shape[0], real_f.shape[0])
        sets["features"] = (real_f, fake_f)

    out: dict[str, float] = {}
    for name in wanted:
        entry = METRICS[name]
        metric = entry.build(setup).to(fake.device)
        real_x, fake_x = sets[entry.inputs]
        metric.update(real_x, real=True)
        metric.update(fake_x, real=False)
        out |= entry.read(metric, setup)
    return out
