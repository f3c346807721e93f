"""FID from a few samples, exactly and fast.

torchmetrics' ``FrechetInceptionDistance`` keeps feature sums and F x F covariance sums and solves
the F x F eigenproblem of ``S_real @ S_fake`` at ``compute()``: for F = 2048 about 11 s on a CPU
core, whatever the number of samples. The evaluation sets here are small (32-128 per side), so
``FrechetDistance`` keeps the features themselves and, when a side has fewer samples than
features, takes the trace term from their n x m cross-product: with centred, scaled features
``X = (x - mean) / sqrt(n - 1)`` (so the covariance is ``X^T X``), the non-zero eigenvalues of
``S_a S_b`` are the squared singular values of ``X_a X_b^T``, so ``tr sqrt(S_a S_b)`` is the
nuclear norm of ``X_a X_b^T``. Same value (to float64 rounding), O(n m F) instead of O(F^3).
With as many samples as features it hands the means and covariances to torchmetrics' own
``_compute_fid``. Under DDP the features are gathered at ``compute()`` like any torchmetrics
``cat`` state.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.image.fid import _compute_fid
from torchmetrics.utilities import dim_zero_cat


def frechet_distance(a: Tensor, b: Tensor) -> Tensor:
    """FID between feature sets ``a: [n, F]`` and ``b: [m, F]`` (float64 inside)."""
    a, b = a.double(), b.double()
    if min(len(a), len(b)) < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    if min(len(a), len(b)) >= a.shape[1]:
        return _compute_fid(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    xa = (a - a.mean(0)) / (len(a) - 1) ** 0.5
    xb = (b - b.mean(0)) / (len(b) - 1) ** 0.5
    trace_sqrt = torch.linalg.svdvals(xa @ xb.T).sum()
    mean_term = (a.mean(0) - b.mean(0)).square().sum()
    return mean_term + xa.square().sum() + xb.square().sum() - 2 * trace_sqrt


class FrechetDistance(Metric):
    """FID over precomputed features: ``update(features [N, F], real=bool)``, ``compute()`` ->
    scalar. The same value as ``FrechetInceptionDistance`` on the same features."""

    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features.double())

    def compute(self) -> Tensor:
        return frechet_distance(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features))
