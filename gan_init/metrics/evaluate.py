"""``evaluate_samples``: one function computing the chosen metrics for a generated set against a
real reference set; the evaluation callback, the ``gan-init evaluate`` command and the tests all
use it. Features for FID, KID and precision/recall are extracted once and shared.

Under DDP every rank calls it with its own share of the samples; the torchmetrics states sync
at ``compute()``, so every rank returns the values for the pooled sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gan_init.metrics.diversity import MSSSIMDiversity
from gan_init.metrics.features import PrecomputedFeatures, load_feature_extractor
from gan_init.metrics.memorization import Memorization, save_closest_pairs
from gan_init.metrics.precision_recall import PrecisionRecall
from gan_init.metrics.swd import SlicedWassersteinDistance
from gan_init.registry import check_choice

ALL_METRICS = ("swd", "fid", "kid", "pr", "msssim", "memo")
FEATURE_METRICS = ("fid", "kid", "pr")


@torch.no_grad()
def extract_features(extractor: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """``images: [N, C, *S] -> [N, F]`` (float64) in batches."""
    return torch.cat([extractor(chunk).double() for chunk in images.split(batch_size)])


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


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
    spatial_dims = fake.dim() - 2
    out: dict[str, float] = {}
    device = fake.device

    if "swd" in metrics:
        swd = SlicedWassersteinDistance(seed=seed).to(device)
        swd.update(real, real=True)
        swd.update(fake, real=False)
        out |= {k: float(v) for k, v in swd.compute().items()}

    extractor: nn.Module | None = None
    if any(m in metrics for m in FEATURE_METRICS) or ("memo" in metrics and feature is not None):
        extractor = load_feature_extractor(feature, spatial_dims, image_shape=tuple(fake.shape[1:]))
        extractor = extractor.to(device).eval()

    if any(m in metrics for m in FEATURE_METRICS):
        fake_f = extract_features(extractor, fake)
        real_f = extract_features(extractor, real) if real_features is None else real_features
        identity = PrecomputedFeatures(fake_f.shape[1])
        if "fid" in metrics:
            fid = FrechetInceptionDistance(feature=identity).to(device)
            fid.update(real_f, real=True)
            fid.update(fake_f, real=False)
            out["fid"] = float(fid.compute())
        if "kid" in metrics:
            n_min = min(fake_f.shape[0], real_f.shape[0]) * _world_size()
            # Subsets of the whole set would all be the same set (a std of 0 that says nothing):
            # with few samples, draw half of them per subset so kid_std measures the spread.
            subset = min(kid_subset_size, max(2, n_min // 2))
            with warnings.catch_warnings():  # its note that it keeps all features: we know
                warnings.simplefilter("ignore", UserWarning)
                kid = KernelInceptionDistance(feature=identity, subset_size=subset).to(device)
            kid.update(real_f, real=True)
            kid.update(fake_f, real=False)
            # torchmetrics draws the KID subsets from the global RNG: seed it, leave it as it was.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                kid_mean, kid_std = kid.compute()
            out["kid"], out["kid_std"] = float(kid_mean), float(kid_std)
        if "pr" in metrics:
            pr = PrecisionRecall(feature=identity).to(device)
            pr.update(real_f, real=True)
            pr.update(fake_f, real=False)
            out |= {k: float(v) for k, v in pr.compute().items()}

    if "msssim" in metrics:
        div = MSSSIMDiversity(seed=seed).to(device)
        div.update(real, real=True)
        div.update(fake, real=False)
        out |= {k: float(v) for k, v in div.compute().items()}

    if "memo" in metrics:
        if train is None:
            raise ValueError("the memorization metric needs training images (train=...)")
        memo = Memorization(train, feature=extractor).to(device)
        memo.update(real, real=True)
        memo.update(fake, real=False)
        out |= {k: float(v) for k, v in memo.compute().items()}
        if pairs_path is not None:
            save_closest_pairs(memo.generated, train, memo.closest, pairs_path)
    return out
