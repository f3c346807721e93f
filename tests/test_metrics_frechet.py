"""The project's FID equals torchmetrics' FID on the same features, in both of its routes
(low-rank when a set has fewer samples than features, torchmetrics' own when it has more), and
it is what ``evaluate_samples`` reports."""

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from gan_init.metrics.evaluate import evaluate_samples
from gan_init.metrics.features import PrecomputedFeatures
from gan_init.metrics.frechet import FrechetDistance, frechet_distance


def torchmetrics_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    fid = FrechetInceptionDistance(feature=PrecomputedFeatures(a.shape[1]))
    fid.update(a, real=True)
    fid.update(b, real=False)
    return float(fid.compute())


@pytest.mark.parametrize("n_real,n_fake,n_features", [(12, 9, 64), (40, 40, 64), (80, 70, 16)])
def test_frechet_distance_equals_torchmetrics(n_real, n_fake, n_features):
    g = torch.Generator().manual_seed(n_real)
    mix = torch.randn(n_features, n_features, generator=g, dtype=torch.float64)
    a = torch.randn(n_real, n_features, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(n_fake, n_features, generator=g, dtype=torch.float64) @ mix + 0.3
    expected = torchmetrics_fid(a, b)
    assert float(frechet_distance(a, b)) == pytest.approx(expected, rel=1e-6)
    metric = FrechetDistance()
    metric.update(a[: n_real // 2], real=True)
    metric.update(b, real=False)
    metric.update(a[n_real // 2 :], real=True)  # updates in pieces give the same
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_is_zero_for_the_same_set_and_refuses_one_sample():
    a = torch.randn(10, 32, dtype=torch.float64)
    assert abs(float(frechet_distance(a, a))) < 1e-9
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(a[:1], a)


@pytest.mark.parametrize("spatial", [(16, 16), (8, 8, 8)])
def test_evaluate_samples_reports_the_torchmetrics_fid(spatial):
    torch.manual_seed(0)
    real = torch.rand(12, 1, *spatial) * 2 - 1
    fake = (real[:10] * 0.5).clamp(-1, 1)
    extractor = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(real[0].numel(), 24))
    out = evaluate_samples(fake, real, metrics=["fid"], feature=extractor)
    with torch.no_grad():
        expected = torchmetrics_fid(extractor(real).double(), extractor(fake).double())
    assert out["fid"] == pytest.approx(expected, rel=1e-6)
