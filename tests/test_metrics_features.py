"""FID, KID, precision/recall, MS-SSIM diversity and memorization, 2D and 3D."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_init.core.assets import AssetMissingError
from gan_init.metrics import (
    FidInceptionV3,
    Memorization,
    MSSSIMDiversity,
    PrecisionRecall,
    PrecomputedFeatures,
    SliceFeatures,
    evaluate_samples,
    save_closest_pairs,
)


class TinyFeatures(nn.Module):
    """A fixed random projection of 4^d thumbnails, [N, 1, *S] -> [N, 16]: a cheap stand-in
    for a feature network that is sensitive enough to order FID/KID in tests."""

    num_features = 16

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(4**spatial_dims, 16, generator=g))
        self.pool = nn.AdaptiveAvgPool2d(4) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(4)

    def forward(self, x):
        return torch.relu(self.pool(x).flatten(1) @ self.proj) / 4  # non-negative, as pool3


def _images(n, spatial, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, *(max(s // 4, 2) for s in spatial), generator=g)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return torch.tanh(
        F.interpolate(x, size=spatial, mode=mode) + 0.1 * torch.randn(n, 1, *spatial, generator=g)
    )


CASES = [pytest.param((16, 16), id="2d"), pytest.param((8, 8, 8), id="3d")]


@pytest.mark.parametrize("spatial", CASES)
def test_fid_kid_zero_for_same_set_and_ordered(spatial):
    feat = TinyFeatures(len(spatial))
    real = _images(64, spatial, seed=1)
    # Shift an independent draw (KID assumes independent sets; a noisy copy is correlated).
    other = _images(64, spatial, seed=2)
    same = evaluate_samples(real, real, metrics=["fid", "kid"], feature=feat)
    a = evaluate_samples(other + 0.2, real, metrics=["fid", "kid"], feature=feat)
    b = evaluate_samples(other + 0.6, real, metrics=["fid", "kid"], feature=feat)
    assert abs(same["fid"]) < 1e-6 * b["fid"] and 0 < a["fid"] < b["fid"]
    # KID of a set with itself is not exactly 0: its unbiased estimator leaves out the k(x, x)
    # diagonal within a set but not across sets; the gap shrinks as 1/n.
    assert abs(same["kid"]) < 0.5 * a["kid"] and a["kid"] < b["kid"]
    # with fewer samples than kid_subset_size the subsets still differ: a real spread
    assert 1e-3 * a["kid"] < a["kid_std"] < a["kid"]


@pytest.mark.parametrize("spatial", CASES)
def test_precision_recall_identical_and_disjoint(spatial):
    feat = TinyFeatures(len(spatial))
    real = _images(40, spatial, seed=1)
    pr = PrecisionRecall(feature=feat)
    pr.update(real, real=True)
    pr.update(real, real=False)
    assert {k: float(v) for k, v in pr.compute().items()} == {"precision": 1.0, "recall": 1.0}
    # Disjoint feature clouds: precision and recall vanish.
    ident = PrecisionRecall(feature=PrecomputedFeatures(8))
    g = torch.Generator().manual_seed(0)
    ident.update(torch.randn(50, 8, generator=g), real=True)
    ident.update(torch.randn(50, 8, generator=g) + 20.0, real=False)
    out = ident.compute()
    assert float(out["precision"]) == 0.0 and float(out["recall"]) == 0.0


@pytest.mark.parametrize("spatial", [(64, 64), (32, 32, 32)], ids=["2d-64", "3d-32"])
def test_msssim_diversity_copies_are_one(spatial):
    one = _images(1, spatial, seed=3)
    div = MSSSIMDiversity(max_pairs=8)
    div.update(one.expand(6, *one.shape[1:]), real=False)
    div.update(_images(6, spatial, seed=4), real=True)
    out = div.compute()
    assert float(out["msssim_fake"]) == pytest.approx(1.0, abs=1e-5)
    assert float(out["msssim_real"]) < 0.9


@pytest.mark.parametrize("spatial", CASES)
def test_memorization_flags_a_copied_training_image(spatial, tmp_path):
    train = _images(30, spatial, seed=5)
    heldout = _images(30, spatial, seed=6)
    fake = _images(20, spatial, seed=7)
    fake[4] = train[11]
    memo = Memorization(train, feature=TinyFeatures(len(spatial)))
    memo.update(heldout, real=True)
    memo.update(fake, real=False)
    out = memo.compute()
    assert float(out["memo_fraction"]) >= 1 / 20  # the copy, plus chance near misses
    assert float(out["memo_fraction_feat"]) >= 1 / 20
    assert memo.closest[0][:2] == (4, 11) and memo.closest[0][2] < 1e-5
    png = save_closest_pairs(fake, train, memo.closest, tmp_path / "pairs.png", k=3)
    assert png.is_file()


def test_evaluate_samples_all_metrics_3d(tmp_path):
    spatial = (16, 16, 16)
    real, fake, train = (_images(20, spatial, seed=s) for s in (1, 2, 3))
    out = evaluate_samples(
        fake,
        real,
        train,
        metrics=["swd", "fid", "kid", "pr", "msssim", "memo"],
        feature=TinyFeatures(3),
        pairs_path=tmp_path / "pairs.png",
    )
    expected = {"swd", "swd_16", "fid", "kid", "kid_std", "precision", "recall"}
    expected |= {
        "msssim_fake",
        "msssim_real",
        "memo_fraction",
        "memo_nn_dist",
        "memo_fraction_feat",
    }
    assert set(out) == expected
    assert (tmp_path / "pairs.png").is_file()
    with pytest.raises(ValueError, match="did you mean 'fid'"):
        evaluate_samples(fake, real, metrics=["fdi"], feature=TinyFeatures(3))


def test_slice_features_average_over_three_axes():
    calls = []

    class Recorder(nn.Module):
        num_features = 2

        def forward(self, x):
            calls.append(tuple(x.shape))
            return torch.stack([x.mean((1, 2, 3)), x.amax((1, 2, 3))], dim=1)

    feats = SliceFeatures(Recorder(), slices_per_axis=3)(torch.zeros(2, 1, 8, 10, 12))
    assert feats.shape == (2, 2)
    assert calls == [(6, 1, 10, 12), (6, 1, 8, 12), (6, 1, 8, 10)]


def test_missing_inception_asset_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_INIT_DATA", str(tmp_path))
    with pytest.raises(AssetMissingError, match="make data"):
        FidInceptionV3()


@pytest.mark.slow
def test_real_inception_fid_2d_and_25d():
    try:
        net = FidInceptionV3(batch_size=16)
    except AssetMissingError as err:  # CI runs `make data` first; say why if it did not
        pytest.fail(str(err))
    real = _images(6, (32, 32), seed=1)
    noisy = (
        real + 0.5 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    ).clamp(-1, 1)
    feats = net(real)
    assert feats.shape == (6, 2048) and torch.isfinite(feats).all()
    same = evaluate_samples(real, real, metrics=["fid"], feature=net, real_features=feats.double())
    worse = evaluate_samples(
        noisy, real, metrics=["fid"], feature=net, real_features=feats.double()
    )
    assert abs(same["fid"]) < 1e-2 * worse["fid"] and worse["fid"] > 1.0
    vols = _images(1, (8, 8, 8), seed=2)
    assert SliceFeatures(net, slices_per_axis=1)(vols).shape == (1, 2048)


class _Conv2dFeatures(nn.Module):
    """A 2D feature network: refuses volumes with conv2d's dimension error."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class _FailsOnVolumes(nn.Module):
    """A 3D feature network with a real failure on volumes (say, out of memory)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return x.flatten(1)


def test_a_2d_user_network_runs_on_slices_of_volumes(tmp_path):
    from gan_init.metrics.features import SliceFeatures, load_feature_extractor

    path = tmp_path / "net2d.pt"
    torch.jit.script(_Conv2dFeatures()).save(str(path))
    net = load_feature_extractor(str(path), 3, image_shape=(1, 8, 8, 8))
    assert isinstance(net, SliceFeatures) and net(torch.zeros(2, 1, 8, 8, 8)).shape == (2, 3)
    net2d = load_feature_extractor(str(path), 2, image_shape=(1, 8, 8))
    assert net2d(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_user_network_failing_for_its_own_reason_is_named_not_sliced(tmp_path, dims):
    """Any RuntimeError of a 3D network used to send it down the 2D path, hiding the error."""
    from gan_init.metrics.features import FeatureNetworkError, load_feature_extractor

    class FailsAlways(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("weights and input disagree: NaN in layer 3")

    net = _FailsOnVolumes() if dims == 3 else FailsAlways()
    path = tmp_path / "net.pt"
    torch.jit.script(net).save(str(path))
    with pytest.raises(FeatureNetworkError, match="out of memory|NaN in layer 3") as caught:
        load_feature_extractor(str(path), dims, image_shape=(1, *(8,) * dims))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
