"""The evaluation's noise floor: the metric between two disjoint real sets of the evaluation's
sizes, at full resolution, logged once per fit and written to metrics_final.json."""

from __future__ import annotations

import csv
import json

import pytest
from pytorch_lightning.loggers import CSVLogger

from gan_init.callbacks.evaluation import EvaluationCallback
from gan_init.metrics.evaluate import evaluate_samples
from tests.builders.fakes import FakeData, FakeGAN
from tests.builders.trainer import cpu_trainer


@pytest.mark.parametrize("spatial_dims", [pytest.param(2, id="2d"), pytest.param(3, id="3d")])
def test_floor_is_logged_once_and_written_to_metrics_final(tmp_path, spatial_dims):
    cb = EvaluationCallback(
        every_n_images=32, metrics=("swd",), costly_every_n_images=0, costly_metrics=(),
        final_metrics=("swd",), n_samples=6, n_real=8, feature=None, seed=3,
    )  # fmt: skip
    logger = CSVLogger(tmp_path, name="csv", version="")
    data = FakeData(spatial_dims)
    trainer = cpu_trainer(tmp_path, callbacks=[cb], max_epochs=1, logger=logger)
    trainer.fit(FakeGAN(spatial_dims), datamodule=data)

    # Validation images of the samples' count against the reference (test) set, at the data's
    # full side (16), although the generator samples at 8 px until 32 images.
    expected = evaluate_samples(
        data.real_images(6, split="val"), data.real_images(8, split="test"), None, ["swd"], seed=3
    )
    assert set(expected) == {"swd", "swd_16"}
    record = json.loads((tmp_path / "csv" / "metrics_final.json").read_text())
    assert record["metrics"]["swd_floor"] == pytest.approx(expected["swd"])
    assert record["metrics"]["swd_16_floor"] == pytest.approx(expected["swd_16"])
    assert record["metrics"]["swd_floor"] > 0  # disjoint sets: never 0
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/swd_floor")]
    assert len(rows) == 1 and float(rows[0]["progress/images_shown"]) == 0.0
    assert float(rows[0]["eval/swd_floor"]) == pytest.approx(expected["swd"])


def test_floor_can_be_turned_off_and_rejects_one_set_metrics(tmp_path):
    with pytest.raises(ValueError, match="noise_floor metric"):
        EvaluationCallback(noise_floor=("msssim",))
    cb = EvaluationCallback(
        every_n_images=0, costly_every_n_images=0, final_metrics=("swd",), n_samples=4,
        n_real=4, feature=None, noise_floor=(),
    )  # fmt: skip
    trainer = cpu_trainer(tmp_path, callbacks=[cb], max_epochs=1)
    trainer.fit(FakeGAN(2), datamodule=FakeData(2))
    record = json.loads((tmp_path / "metrics_final.json").read_text())
    assert "swd" in record["metrics"] and "swd_floor" not in record["metrics"]


def test_floor_over_disjoint_splits_reports_mean_and_sd(tmp_path):
    """``floor_splits`` disjoint real sets of the samples' size, one reference: mean and SD."""
    import torch

    cb = EvaluationCallback(
        every_n_images=0, costly_every_n_images=0, final_metrics=("swd",), n_samples=6,
        n_real=8, feature=None, seed=3, floor_splits=3,
    )  # fmt: skip
    data = FakeData(2)
    trainer = cpu_trainer(tmp_path, callbacks=[cb], max_epochs=1)
    trainer.fit(FakeGAN(2), datamodule=data)
    pool, reference = data.real_images(18, split="val"), data.real_images(8, split="test")
    per_split = torch.tensor(
        [evaluate_samples(pool[k * 6 : (k + 1) * 6], reference, None, ["swd"], seed=3)["swd"]
         for k in range(3)], dtype=torch.float64,
    )  # fmt: skip
    record = json.loads((tmp_path / "metrics_final.json").read_text())["metrics"]
    assert record["swd_floor"] == pytest.approx(float(per_split.mean()))
    assert record["swd_floor_sd"] == pytest.approx(float(per_split.std()))
    with pytest.raises(ValueError, match="floor_splits"):
        EvaluationCallback(floor_splits=0)
