"""Diversity as mean pairwise MS-SSIM (Wang et al. 2003) within a set (Odena et al. 2017,
sec. 4.2): near 1 when samples are copies of each other (mode collapse), lower for varied sets;
generated samples are judged against the same number for real samples.

Settings chosen to work at 64^2 and at 32^3 (torchmetrics needs ``side // (scales - 1)^2 >
kernel_size - 1``; the coarsest scale must still hold a kernel): 3 scales, a 7-tap Gaussian
window (sigma = 3 / 3.5: torchmetrics sizes a Gaussian window from sigma alone, as
``2 * int(3.5 * sigma + 0.5) + 1`` taps, so sigma 1.5 would give 11 taps whatever
``kernel_size`` says), and the first three of Wang et al.'s scale weights (0.0448, 0.2856,
0.3001) renormalised to sum to 1. The default 5 scales with an 11-tap window need 160 px.
Smaller images (early progressive levels, 16^3 test volumes) use as many of the three scales as
fit, with their weights renormalised, and a smaller odd window below 8 px (``msssim_settings``).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure
from torchmetrics.utilities import dim_zero_cat

_WANG_BETAS = (0.0448, 0.2856, 0.3001)
MSSSIM_BETAS = tuple(b / sum(_WANG_BETAS) for b in _WANG_BETAS)
MSSSIM_KERNEL_SIZE = 7


def msssim_settings(side: int) -> tuple[int, tuple[float, ...]]:
    """Kernel size and scale weights for images whose smallest side is ``side``: the documented
    defaults where they fit, else as many scales as leave the coarsest one a full window (and
    pass torchmetrics' size rule), and below 7 px one scale with the largest odd window."""
    if side < 3:
        raise ValueError(f"MS-SSIM needs images of at least 3 px per side, got {side}")
    kernel = min(MSSSIM_KERNEL_SIZE, side - (side % 2 == 0))
    for n in range(len(MSSSIM_BETAS), 0, -1):
        coarsest = side // 2 ** (n - 1)
        if coarsest >= kernel and side // max(1, n - 1) ** 2 > kernel - 1:
            betas = MSSSIM_BETAS[:n]
            return kernel, tuple(b / sum(betas) for b in betas)
    return kernel, (1.0,)


def pairwise_msssim(
    images: Tensor,
    *,
    max_pairs: int = 256,
    seed: int = 0,
    data_range: float = 2.0,
    batch_size: int = 64,
) -> Tensor:
    """Mean MS-SSIM over pairs of distinct images of ``images: [N, C, *S]`` (values in a range of
    width ``data_range``): all pairs when there are at most ``max_pairs``, else ``max_pairs``
    random pairs (seeded)."""
    n = images.shape[0]
    if n < 2:
        raise ValueError("pairwise MS-SSIM needs at least 2 images")
    if n * (n - 1) // 2 <= max_pairs:
        pairs = torch.tensor(list(itertools.combinations(range(n), 2)))
    else:
        g = torch.Generator().manual_seed(seed)
        i = torch.randint(0, n, (max_pairs,), generator=g)
        j = (i + torch.randint(1, n, (max_pairs,), generator=g)) % n  # j != i
        pairs = torch.stack([i, j], dim=1)
    pairs = pairs.to(images.device)
    kernel_size, betas = msssim_settings(min(images.shape[2:]))
    scores = []
    for chunk in pairs.split(batch_size):
        scores.append(
            multiscale_structural_similarity_index_measure(
                images[chunk[:, 0]].float(),
                images[chunk[:, 1]].float(),
                data_range=data_range,
                kernel_size=kernel_size,
                sigma=(kernel_size // 2) / 3.5,  # a window of exactly kernel_size taps
                betas=betas,
                reduction="none",
            )
        )
    return torch.cat(scores).mean()


class MSSSIMDiversity(Metric):
    """Mean pairwise MS-SSIM of generated and of real images (2D or 3D, any ``[B, C, *S]`` in
    [-1, 1]). ``update(images, real: bool)``; ``compute() -> {"msssim_fake", "msssim_real"}``
    (a set with no images is left out). Image states are lists (``cat`` across ranks)."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, max_pairs: int = 256, seed: int = 0, data_range: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.max_pairs = max_pairs
        self.seed = seed
        self.data_range = data_range
        self.add_state("real_images", default=[], dist_reduce_fx="cat")
        self.add_state("fake_images", default=[], dist_reduce_fx="cat")

    def update(self, images: Tensor, real: bool) -> None:
        (self.real_images if real else self.fake_images).append(images.detach().float())

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for name, state in (("msssim_fake", self.fake_images), ("msssim_real", self.real_images)):
            if isinstance(state, Tensor) or state:
                out[name] = pairwise_msssim(
                    dim_zero_cat(state),
                    max_pairs=self.max_pairs,
                    seed=self.seed,
                    data_range=self.data_range,
                )
        return out
