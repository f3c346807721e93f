"""TransferDiagnostics: linear CKA against hand computations, weight distances from the start of
training (after the weight transfer), a reference that survives checkpoints and resume, and the
``diag/*`` keys in the CSV of a tiny 2D and 3D fit, beside ``progress/images_shown``."""

from __future__ import annotations

import csv

import pytest
import torch
from pytorch_lightning.loggers import CSVLogger

from gan_init.callbacks import ProgressiveSchedule, TransferDiagnostics, WeightTransfer
from gan_init.callbacks.diagnostics import centered_gram, linear_cka
from gan_init.transfer import effective_state
from tests.builders.checkpoints import save_cyclegan
from tests.builders.images import BlobData, PhantomDataModule
from tests.builders.networks import tiny_cyclegan, tiny_noise_gan, tiny_spec

DIMS = [pytest.param(2, id="2d"), pytest.param(3, id="3d")]
# Fits: 3D behind the slow marker (still run by CI), as the other callback tests do.
FIT_DIMS = [pytest.param(2, id="2d"), pytest.param(3, id="3d", marks=pytest.mark.slow)]
# Parts of tiny_noise_gan(grow="full"): every part has parameters.
PARTS = ("latent_stem", "trunk", "decoder", "head", "to_image")
CKA_PARTS = ("latent_stem", "trunk", "decoder", "head")


def cka_direct(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al. 2019, eq. 5, on column-centered ``[n, p]`` and ``[n, q]``."""
    x, y = x.double(), y.double()
    x, y = x - x.mean(0), y - y.mean(0)
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def cka_hsic(x: torch.Tensor, y: torch.Tensor) -> float:
    """Through the biased HSIC estimator with the centering matrix H (eq. 3-4)."""
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = x.double() @ x.double().T, y.double() @ y.double().T

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h)

    return float(hsic(k, l_) / (hsic(k, k) * hsic(l_, l_)).sqrt())


def test_cka_is_one_for_identical_scaled_and_rotated_activations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 5, 5, generator=g)
    gram = centered_gram(x)
    assert linear_cka(gram, gram) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(gram, centered_gram(3.7 * x)) == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(torch.randn(75, 75, generator=g, dtype=torch.float64))
    rotated = (x.flatten(1).double() @ q).float()
    assert linear_cka(gram, centered_gram(rotated)) == pytest.approx(1.0, abs=1e-6)
    perturbed = x + 0.5 * torch.randn(x.shape, generator=g)
    assert linear_cka(gram, centered_gram(perturbed)) < 0.95
    # A mean shift is removed by the centering.
    assert linear_cka(gram, centered_gram(x + 4.0)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("shape", [(20, 7), (16, 40)])
def test_cka_matches_direct_computations_on_random_matrices(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g)
    y = torch.randn(shape[0], 11, generator=g) + x[:, :1] * 2.0  # partly related
    got = linear_cka(centered_gram(x), centered_gram(y))
    assert got == pytest.approx(cka_direct(x, y), rel=1e-9)
    assert got == pytest.approx(cka_hsic(x, y), rel=1e-9)
    assert 0.0 < got < 1.0
    # Accumulated over feature chunks (large activations), the same Gram matrix.
    torch.testing.assert_close(centered_gram(x, chunk=3), centered_gram(x), rtol=1e-12, atol=1e-9)


class Recorder(TransferDiagnostics):
    """Keeps every measured row (the values the loggers get)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[dict[str, float]] = []

    def measure(self, pl_module, before=None):
        values = super().measure(pl_module, before)
        self.rows.append({**values, "images": int(pl_module.images_shown)})
        return values


@pytest.mark.parametrize("spatial_dims", FIT_DIMS)
def test_reference_is_taken_after_the_transfer_and_distances_grow(
    tmp_path, make_trainer, spatial_dims
):
    source = tmp_path / "cyclegan.ckpt"
    cyclegan = save_cyclegan(source, tiny_spec(spatial_dims))
    gan = tiny_noise_gan(spatial_dims, "full")
    diag = Recorder(every_n_images=4, n_latents=8)
    transfer = WeightTransfer("cyclegan", source=str(source))
    schedule = ProgressiveSchedule(train_images=100, fade_images=0)  # stays at level 0
    make_trainer(2 * 4, [schedule, transfer, diag]).fit(gan, BlobData(spatial_dims))

    # w0 of the trunk is the CycleGAN's trunk (copied in on_fit_start), not the random init.
    expected = effective_state(cyclegan.g_t2_to_t1.trunk)
    for name, w0 in diag.reference_weights["trunk"].items():
        torch.testing.assert_close(w0, expected[name], rtol=0, atol=0)
    assert diag.transferred == ["trunk", "decoder", "head"]
    assert set(diag.reference_weights) == set(PARTS)
    assert set(diag.reference_grams) == set(CKA_PARTS)
    assert diag.reference_grams["head"].shape == (8, 8)

    # Batches of 2: measured at 2 (first step) and 6 images shown (every 4).
    assert [r["images"] for r in diag.rows] == [2, 6]
    last = diag.rows[-1]
    # Level 0 (2 px) of full growth: the stem and its to-image head train; trunk, decoder and
    # head are idle, so unchanged, and the full-resolution path still measures them.
    assert gan.level == 0
    for part in ("latent_stem", "to_image"):
        assert last[f"diag/weight_dist/{part}"] > 0, part
        assert last[f"diag/update_ratio/{part}"] > 0, part
    for part in ("trunk", "decoder", "head"):
        assert last[f"diag/weight_dist/{part}"] == 0 and last[f"diag/update_ratio/{part}"] == 0
    # The stem's output moved; so does everything downstream of it on the full path.
    assert last["diag/cka/latent_stem"] < 1.0
    assert diag.rows[0]["diag/cka/latent_stem"] > last["diag/cka/latent_stem"]


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_distance_zero_and_cka_one_at_the_start(spatial_dims):
    gan = tiny_noise_gan(spatial_dims, "stem")
    diag = TransferDiagnostics(n_latents=6)
    diag.reference_weights, diag.reference_grams = diag.weights(gan), diag.grams(gan)
    values = diag.measure(gan)
    for part in ("latent_stem", "trunk", "decoder", "head"):
        assert values[f"diag/weight_dist/{part}"] == 0.0
        assert values[f"diag/cka/{part}"] == pytest.approx(1.0, abs=1e-9)
    assert not any(k.startswith("diag/update_ratio") for k in values)  # no step measured
    assert "diag/weight_dist/to_image" not in values  # stem growth has no to_image heads
    with torch.no_grad():
        gan.generator.trunk.blocks[0].conv1.weight.mul_(1.5)
    moved = diag.measure(gan)
    assert moved["diag/weight_dist/trunk"] > 0 and moved["diag/weight_dist/head"] == 0.0
    assert moved["diag/cka/trunk"] < 1.0


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_reference_survives_save_and_load(tmp_path, spatial_dims):
    gan = tiny_noise_gan(spatial_dims, "full")
    diag = TransferDiagnostics(n_latents=6, seed=3)
    diag.reference_weights, diag.reference_grams = diag.weights(gan), diag.grams(gan)
    diag.next_at = 1234
    torch.save({"callback": diag.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)["callback"]

    other = TransferDiagnostics(n_latents=6, seed=3)
    other.load_state_dict(state)
    assert other.next_at == 1234
    with torch.no_grad():  # training moved on
        for p in gan.generator.parameters():
            p.add_(0.1)
    assert other.measure(gan) == diag.measure(gan)
    assert other.measure(gan)["diag/weight_dist/trunk"] > 0


def test_resumed_fit_measures_against_the_true_start(tmp_path, make_trainer):
    gan = tiny_noise_gan(2, "stem")
    first = Recorder(every_n_images=2, n_latents=6)
    trainer = make_trainer(2 * 2, [first])
    trainer.fit(gan, BlobData(2))
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)

    resumed = Recorder(every_n_images=2, n_latents=6)
    make_trainer(2 * 3, [resumed]).fit(tiny_noise_gan(2, "stem"), BlobData(2), ckpt_path=ckpt)
    for part, ref in first.reference_weights.items():
        for name, w0 in ref.items():
            torch.testing.assert_close(resumed.reference_weights[part][name], w0, rtol=0, atol=0)
    assert [r["images"] for r in resumed.rows] == [6]  # the schedule continued, too
    # Measured from the start, the distance after 3 steps exceeds the one after 2.
    dist = [r["diag/weight_dist/trunk"] for r in (*first.rows, *resumed.rows)]
    assert dist[-1] > dist[-2] > 0


@pytest.mark.parametrize("spatial_dims", FIT_DIMS)
def test_keys_reach_the_csv_beside_images_shown(tmp_path, make_trainer, spatial_dims):
    gan = tiny_noise_gan(spatial_dims, "full")
    logger = CSVLogger(tmp_path, name="csv", version="")
    schedule = ProgressiveSchedule(train_images=4, fade_images=0)
    diag = TransferDiagnostics(every_n_images=4, n_latents=4)
    trainer = make_trainer(2 * 5, [schedule, diag], logger=logger, log_every_n_steps=50)
    trainer.fit(gan, BlobData(spatial_dims))
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("diag/weight_dist/trunk")]
    expected = {f"diag/{kind}/{part}" for kind in ("weight_dist", "update_ratio") for part in PARTS}
    expected |= {f"diag/cka/{part}" for part in CKA_PARTS}
    assert expected <= set(rows[0])
    # Every row carries its x-axis, although Lightning writes its own rows every 50 steps only.
    assert [float(r["progress/images_shown"]) for r in rows] == [2.0, 6.0, 10.0]
    assert all(r[k] != "" for r in rows for k in expected)
    assert (tmp_path / "csv" / "hparams.yaml").read_text().count("diag/parts") == 1


def test_rejects_unknown_part_and_other_models(make_trainer):
    with pytest.raises(ValueError, match="unknown \\['trunkk'\\]"):
        TransferDiagnostics(parts=("trunkk",))

    with pytest.raises(TypeError, match="Remove the callback"):
        make_trainer(2, [TransferDiagnostics()]).fit(tiny_cyclegan(2), PhantomDataModule(2))
