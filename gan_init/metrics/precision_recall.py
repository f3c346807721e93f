"""Improved precision and recall (Kynkaanniemi et al. 2019, NeurIPS, sec. 2).

Each set's manifold is the union of hyperspheres around its feature vectors, the radius of each
being the distance to its k-th nearest neighbour in the same set (k = 3, eq. 2). Precision is the
fraction of generated samples inside the real manifold, recall the fraction of real samples
inside the generated manifold (eq. 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def knn_radii(features: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance of every row of ``features: [N, F]`` to its k-th nearest other row: ``[N]``."""
    if features.shape[0] <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    radii = []
    for rows in features.split(chunk):
        d = torch.cdist(rows, features)
        # The k+1-th smallest includes the row's zero distance to itself.
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def manifold_coverage(queries: Tensor, support: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Fraction of ``queries: [M, F]`` within ``radii: [N]`` of some row of ``support: [N, F]``."""
    inside = []
    for rows in queries.split(chunk):
        inside.append((torch.cdist(rows, support) <= radii[None]).any(dim=1))
    return torch.cat(inside).double().mean()


class PrecisionRecall(Metric):
    """Improved precision and recall on features. ``update(images, real: bool)`` runs
    ``feature`` (images ``[B, C, *S]`` -> ``[B, F]``; ``PrecomputedFeatures`` to pass features);
    ``compute() -> {"precision", "recall"}``. Feature states are lists (``cat`` across ranks)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, feature: nn.Module, k: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.feature = feature
        self.k = k
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, images: Tensor, real: bool) -> None:
        feats = self.feature(images).double()
        (self.real_features if real else self.fake_features).append(feats)

    def compute(self) -> dict[str, Tensor]:
        real = dim_zero_cat(self.real_features)
        fake = dim_zero_cat(self.fake_features)
        precision = manifold_coverage(fake, real, knn_radii(real, self.k))
        recall = manifold_coverage(real, fake, knn_radii(fake, self.k))
        return {"precision": precision, "recall": recall}
