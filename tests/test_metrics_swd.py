"""Sliced Wasserstein distance: the reference algorithm (Karras et al. 2018), 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from gan_init.metrics.swd import SlicedWassersteinDistance, laplacian_pyramid, pyr_down, pyr_up

# ---- a direct numpy transcription of progressive_growing_of_gans/metrics/sliced_wasserstein.py,
# with numpy Generators in place of the global numpy random state (the metric's documented draws).

_G = np.float32([1, 4, 6, 4, 1])
_G2 = np.outer(_G, _G) / 256.0


def _ref_pyr_down(mb):
    return scipy.ndimage.convolve(mb, _G2[None, None], mode="mirror")[:, :, ::2, ::2]


def _ref_pyr_up(mb):
    s = mb.shape
    res = np.zeros((s[0], s[1], s[2] * 2, s[3] * 2), mb.dtype)
    res[:, :, ::2, ::2] = mb
    return scipy.ndimage.convolve(res, _G2[None, None] * 4.0, mode="mirror")


def _ref_pyramid(mb, num_levels):
    pyramid = [np.float32(mb)]
    for _ in range(1, num_levels):
        pyramid.append(_ref_pyr_down(pyramid[-1]))
        pyramid[-2] -= _ref_pyr_up(pyramid[-1])
    return pyramid


def _ref_descriptors(mb, rng, nhood_size=7, per_image=128):
    s = mb.shape
    n = per_image * s[0]
    h = nhood_size // 2
    nhood, chan, x, y = np.ogrid[0:n, 0 : s[1], -h : h + 1, -h : h + 1]
    img = nhood // per_image
    x = x + rng.integers(h, s[3] - h, size=n).reshape(n, 1, 1, 1)
    y = y + rng.integers(h, s[2] - h, size=n).reshape(n, 1, 1, 1)
    idx = ((img * s[1] + chan) * s[2] + y) * s[3] + x
    return mb.flat[idx]


def _ref_finalize(desc):
    desc = np.concatenate(desc, axis=0)
    desc -= np.mean(desc, axis=(0, 2, 3), keepdims=True)
    desc /= np.std(desc, axis=(0, 2, 3), keepdims=True)
    return desc.reshape(desc.shape[0], -1)


def _ref_sliced_wasserstein(a, b, rng, dir_repeats=4, dirs_per_repeat=128):
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs = dirs.astype(np.float32)
        pa = np.sort(np.matmul(a, dirs), axis=0)
        pb = np.sort(np.matmul(b, dirs), axis=0)
        results.append(np.mean(np.abs(pa - pb)))
    return np.mean(results)


def _ref_swd(real_batches, fake_batches, seed):
    pos_rng = np.random.default_rng([seed, 1])
    res, resolutions = real_batches[0].shape[-1], []
    while res >= 16:
        resolutions.append(res)
        res //= 2
    sets = []
    for batches in (real_batches, fake_batches):
        desc = [[] for _ in resolutions]
        for mb in batches:
            for lod, level in enumerate(_ref_pyramid(mb, len(resolutions))):
                desc[lod].append(_ref_descriptors(level, pos_rng))
        sets.append([_ref_finalize(d) for d in desc])
    dir_rng = np.random.default_rng(seed)
    dist = [_ref_sliced_wasserstein(a, b, dir_rng) * 1e3 for a, b in zip(*sets)]
    return dist + [np.mean(dist)]


# ---- helpers


def _smooth_images(n: int, spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    """Smooth random images [n, 1, *spatial] in [-1, 1] (low-pass noise, a stand-in for anatomy)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, *(max(s // 4, 2) for s in spatial), generator=g)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    x = F.interpolate(x, size=spatial, mode=mode, align_corners=False)
    x = x + 0.1 * torch.randn(n, 1, *spatial, generator=g)
    return torch.tanh(x)


def _swd(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, **kw) -> dict[str, float]:
    metric = SlicedWassersteinDistance(seed=seed, rank=0, **kw)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return {k: float(v) for k, v in metric.compute().items()}


# ---- tests


def test_pyramid_matches_reference_filters():
    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    )
    np.testing.assert_allclose(pyr_down(x).numpy(), _ref_pyr_down(x.numpy()), atol=1e-5)
    small = pyr_down(x)
    np.testing.assert_allclose(
        pyr_up(small, (32, 32)).numpy(), _ref_pyr_up(small.numpy()), atol=1e-5
    )
    for ours, ref in zip(laplacian_pyramid(x, 2), _ref_pyramid(x.numpy(), 2)):
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_swd_matches_numpy_reference_2d():
    real = _smooth_images(24, (32, 32), seed=1)
    fake = _smooth_images(24, (32, 32), seed=2) * 0.7
    metric = SlicedWassersteinDistance(seed=5, rank=0)
    for batch in real.split(10):
        metric.update(batch, real=True)
    for batch in fake.split(10):
        metric.update(batch, real=False)
    ours = metric.compute()
    ref = _ref_swd([b.numpy() for b in real.split(10)], [b.numpy() for b in fake.split(10)], seed=5)
    got = [float(ours["swd_32"]), float(ours["swd_16"]), float(ours["swd"])]
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    # reset() restarts the random draws: the same evaluation gives the same value.
    metric.reset()
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert float(metric.compute()["swd"]) == pytest.approx(_swd(real, fake, seed=5)["swd"])


@pytest.mark.parametrize("spatial", [(32, 32), (16, 16, 16)], ids=["2d", "3d"])
def test_swd_small_for_same_images_grows_with_noise_and_blur(spatial):
    n = 32 if len(spatial) == 2 else 10
    images = _smooth_images(n, spatial, seed=3)
    # Two draws of neighbourhoods from the same images: what is left is sampling noise.
    same = _swd(images, images, seed=0)["swd"]
    g = torch.Generator().manual_seed(9)
    noisy = [
        _swd(images, images + s * torch.randn(images.shape, generator=g))["swd"] for s in (0.2, 0.5)
    ]
    blur = _swd(images, F.interpolate(pyr_down(images), size=spatial, mode="nearest"))["swd"]
    assert same < noisy[0] < noisy[1]
    assert same < blur
    assert 2 * same < noisy[1]


def test_swd_levels_3d_and_unequal_set_sizes():
    real = _smooth_images(6, (32, 32, 32), seed=1)
    fake = _smooth_images(4, (32, 32, 32), seed=2)
    out = _swd(real, fake)
    assert set(out) == {"swd_32", "swd_16", "swd"}
    assert out["swd"] == pytest.approx((out["swd_32"] + out["swd_16"]) / 2)
    assert all(np.isfinite(v) and v > 0 for v in out.values())


def test_swd_rejects_mixed_shapes():
    metric = SlicedWassersteinDistance(rank=0)
    metric.update(torch.zeros(2, 1, 16, 16), real=True)
    with pytest.raises(ValueError, match="share one shape"):
        metric.update(torch.zeros(2, 1, 32, 32), real=False)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sort_rows_is_torch_sort(threads, monkeypatch):
    """The CPU sort (numpy over row blocks in threads) gives torch.sort's values exactly, for
    any thread count, row count and dtype; other dtypes go to torch.sort."""
    from gan_init.metrics.swd import sort_rows

    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    g = torch.Generator().manual_seed(threads)
    for rows, cols, dtype in [
        (5, 333, torch.float32),
        (1, 10, torch.float64),
        (7, 2, torch.float32),
    ]:
        x = torch.randn(rows, cols, generator=g, dtype=dtype)
        x[0, :2] = 0.0  # ties
        assert torch.equal(sort_rows(x.t().t()), torch.sort(x, dim=-1).values)
        assert torch.equal(sort_rows(x[:, ::2]), torch.sort(x[:, ::2], dim=-1).values)
    ints = torch.randint(0, 9, (3, 11), generator=g)
    assert torch.equal(sort_rows(ints), torch.sort(ints, dim=-1).values)
