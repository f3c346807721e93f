"""Memorization: does the generator reproduce training images?

For each generated sample, the distance to its nearest training image (L2 in pixel space, and in
feature space when an extractor is given) is set against the same distance for held-out real
images, which are new draws from the data distribution and so are not copies. A generated sample
closer to a training image than the 5th percentile of the held-out distances is flagged; the
reported number is the fraction flagged (about 0.05 for a generator that does not copy, by
construction, and up to 1 for one that does). The closest pairs can be saved side by side.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from gan_init.core.visualize import image_grid, save_png


def nearest_distances(
    queries: Tensor, reference: Tensor, chunk: int = 512
) -> tuple[Tensor, Tensor]:
    """L2 distance of every row of ``queries: [M, F]`` to its nearest row of ``reference: [N, F]``
    and that row's index: ``([M], [M])``."""
    dists, idx = [], []
    for rows in queries.split(chunk):
        d = torch.cdist(rows.double(), reference.double())
        best = d.min(dim=1)
        dists.append(best.values)
        idx.append(best.indices)
    return torch.cat(dists), torch.cat(idx)


class Memorization(Metric):
    """Fraction of generated samples closer to the training set than the ``quantile`` of
    held-out real images' distances (pixel L2 and, with ``feature``, feature L2).

    ``train: [N, C, *S]`` is the fixed training reference (not a state: every rank holds it).
    ``update(images, real: bool)``: generated samples (``real=False``) and held-out real images
    (``real=True``). ``compute() -> {"memo_fraction", "memo_nn_dist", "memo_fraction_feat"}``;
    afterwards ``closest`` holds ``(fake_index, train_index, distance)`` of the generated samples
    nearest to a training image (pixel space), closest first.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self, train: Tensor, feature: nn.Module | None = None, quantile: float = 0.05, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.feature = feature
        self.quantile = quantile
        self.register_buffer("train_flat", train.detach().float().flatten(1), persistent=False)
        self.train_feats: Tensor | None = None
        self.add_state("fake_images", default=[], dist_reduce_fx="cat")
        self.add_state("heldout_images", default=[], dist_reduce_fx="cat")
        self.closest: list[tuple[int, int, float]] = []
        # The generated set compute() saw (every rank's under DDP): ``closest`` indexes into it.
        self.generated: Tensor | None = None

    def update(self, images: Tensor, real: bool) -> None:
        (self.heldout_images if real else self.fake_images).append(images.detach().float())

    def _fraction(
        self, fake: Tensor, heldout: Tensor, train: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        d_fake, idx = nearest_distances(fake, train)
        d_heldout, _ = nearest_distances(heldout, train)
        threshold = torch.quantile(d_heldout, self.quantile)
        return (d_fake < threshold).double().mean(), d_fake, idx

    def compute(self) -> dict[str, Tensor]:
        fake = dim_zero_cat(self.fake_images)
        heldout = dim_zero_cat(self.heldout_images)
        fraction, d_fake, idx = self._fraction(fake.flatten(1), heldout.flatten(1), self.train_flat)
        order = torch.argsort(d_fake)
        self.closest = [(int(i), int(idx[i]), float(d_fake[i])) for i in order]
        self.generated = fake
        out = {"memo_fraction": fraction, "memo_nn_dist": d_fake.median()}
        if self.feature is not None:
            if self.train_feats is None:
                shape = (-1, *fake.shape[1:])
                self.train_feats = self.feature(self.train_flat.reshape(shape)).double()
            out["memo_fraction_feat"], _, _ = self._fraction(
                self.feature(fake).double(), self.feature(heldout).double(), self.train_feats
            )
        return out


def save_closest_pairs(
    fake: Tensor, train: Tensor, closest: list[tuple[int, int, float]], path: str | Path, k: int = 8
) -> Path:
    """PNG of the ``k`` closest (generated | nearest training image) pairs, one pair per row, for
    a person to look at (``gan_init.core.visualize``: upright, enlarged, columns named; 3D volumes as
    their three middle slices). ``fake, train: [N, C, *S]`` in [-1, 1]."""
    pairs = closest[:k]
    grid = image_grid(
        [fake[[fi for fi, _, _ in pairs]], train[[ti for _, ti, _ in pairs]]],
        titles=["generated", "nearest training image"],
        row_titles=[f"L2 distance {d:.3g}" for _, _, d in pairs],
        caption=f"memorization: the {len(pairs)} generated samples closest to the training set",
    )
    return save_png(grid, path)
