"""Evaluation and stability callbacks on a tiny fake noise GAN (the agreed interface)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn

from gan_init.callbacks.evaluation import EvaluationCallback
from gan_init.callbacks.stability import StabilityCallback
from tests.builders.fakes import FakeData, FakeGAN
from tests.builders.trainer import cpu_trainer


def _trainer(tmp_path, callbacks):
    return cpu_trainer(tmp_path, callbacks=callbacks, max_epochs=1, enable_checkpointing=True)


class FakeFeatures(nn.Module):
    num_features = 8

    def forward(self, x):
        return (
            F.adaptive_avg_pool2d(x, 2).flatten(1).repeat(1, 2)
            if x.dim() == 4
            else x.flatten(1)[:, :8]
        )


@pytest.mark.parametrize(
    "spatial_dims", [pytest.param(2, id="2d"), pytest.param(3, id="3d", marks=pytest.mark.slow)]
)
def test_evaluation_schedule_resolution_and_final_json(tmp_path, spatial_dims):
    cb = EvaluationCallback(
        every_n_images=16,
        metrics=("swd",) if spatial_dims == 2 else ("msssim",),
        costly_every_n_images=48,
        costly_metrics=("fid", "pr"),
        final_metrics=("fid", "kid", "pr", "msssim", "memo"),
        n_samples=12,
        n_real=12,
        n_train=12,
        feature=FakeFeatures(),
    )
    model = FakeGAN(spatial_dims)
    trainer = _trainer(tmp_path, [cb])
    seen: list[dict] = []
    original = cb.evaluate

    def recording(trainer, pl_module, metrics, final=False):
        values = original(trainer, pl_module, metrics, final)
        seen.append({"shown": pl_module.images_shown, "metrics": metrics, **values})
        return values

    cb.evaluate = recording
    trainer.fit(model, datamodule=FakeData(spatial_dims))
    # 64 images in batches of 4: cheap at 16, 32, 48, 64; costly at 48; final once more.
    assert [s["shown"] for s in seen] == [16, 32, 48, 64, 64]
    assert "fid" in seen[2]["metrics"] and "fid" not in seen[1]["metrics"]
    assert seen[0]["resolution"] == 8 and seen[-1]["resolution"] == 16
    record = json.loads((tmp_path / "metrics_final.json").read_text())
    assert record["images_shown"] == 64
    assert {"fid", "kid", "precision", "recall", "msssim_fake", "memo_fraction"} <= set(
        record["metrics"]
    )
    assert "eval/fid" in trainer.callback_metrics
    assert (tmp_path / "memorization_closest_pairs.png").is_file()
    state = cb.state_dict()
    assert (state["next_cheap"], state["next_costly"]) == (80, 96)
    if spatial_dims == 2:
        # The primary endpoint: mean SWD of the full-resolution (16 px) evaluations only; the
        # 8 px values keep their own names and never enter it. Kept for resume.
        swd = {s["shown"]: s["swd"] for s in seen if "swd" in s and s["resolution"] == 16}
        swd = list(swd.items())  # one point per count: the final evaluation replaces the last
        assert [list(p) for p in swd] == state["full_curve"] and len(swd) >= 2
        low = [s for s in seen if "swd" in s and s["resolution"] == 8]
        assert low and all(s["at8/swd"] == s["swd"] and "full/swd" not in s for s in low)
        mean = sum(v for _, v in swd) / len(swd)
        assert record["metrics"]["full/swd_mean"] == pytest.approx(mean)
        assert float(trainer.callback_metrics["eval/full/swd_mean"]) == pytest.approx(mean)
        assert record["metrics"]["full/fid"] == record["metrics"]["fid"]
        again = EvaluationCallback(metrics=("swd",), feature=None)
        again.load_state_dict(state)
        assert again.full_curve == [tuple(p) for p in state["full_curve"]]
    assert record["failure"] == "none"


def test_evaluation_rejects_unknown_metric():
    with pytest.raises(ValueError, match="did you mean 'swd'"):
        EvaluationCallback(metrics=("swdd",))


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(math.nan, "non-finite"), (math.inf, "non-finite"), (1e9, "exploding")],
    ids=["nan", "inf", "explode"],
)
def test_stability_stops_cleanly_and_records(tmp_path, bad, reason):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_last=True)
    stability = StabilityCallback(max_abs_loss=1e6)
    model = FakeGAN(loss_at={5: bad})
    trainer = _trainer(tmp_path, [stability, ckpt])
    trainer.fit(model, datamodule=FakeData())
    record = json.loads((tmp_path / "divergence.json").read_text())
    assert reason in record["reason"] and record["global_step"] == 6
    assert record["images_shown"] == 24
    assert trainer.global_step == 6  # stopped right after the bad step
    assert float(trainer.callback_metrics["train/diverged"]) == 1.0
    # The checkpoints written before the divergence are kept, and none come after it.
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert any("step=4" in n for n in names) and not any("step=6" in n for n in names)
    assert torch.isfinite(
        torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]["lin.weight"]
    ).all()


def test_stability_patience_ignores_single_spikes(tmp_path):
    stability = StabilityCallback(max_abs_loss=10.0, patience=2)
    trainer = _trainer(tmp_path, [stability])
    trainer.fit(FakeGAN(loss_at={3: 100.0, 7: 100.0}), datamodule=FakeData())
    assert not stability.diverged and not (tmp_path / "divergence.json").exists()
    assert trainer.global_step == 16


def test_diverged_run_final_evaluation_records_nonfinite(tmp_path):
    evaluation = EvaluationCallback(
        every_n_images=0,
        final_metrics=("swd", "fid"),
        n_samples=8,
        n_real=8,
        feature=FakeFeatures(),
        noise_floor=(),  # this test is about the diverged run's own metrics
    )
    trainer = _trainer(tmp_path, [StabilityCallback(), evaluation])
    trainer.fit(FakeGAN(loss_at={2: math.nan}), datamodule=FakeData())
    assert json.loads((tmp_path / "divergence.json").read_text())["global_step"] == 3
    record = json.loads((tmp_path / "metrics_final.json").read_text())
    assert record["metrics"] == {
        "nonfinite_samples": 1.0,
        "at8/nonfinite_samples": 1.0,
        "resolution": 8.0,
    }
    assert record["failure"] == "diverged"


@pytest.mark.parametrize("spatial_dims", [pytest.param(2, id="2d"), pytest.param(3, id="3d")])
def test_evaluation_times_itself_and_the_share_reaches_the_summary(tmp_path, spatial_dims):
    cb = EvaluationCallback(
        every_n_images=16,
        metrics=("fid",),
        costly_every_n_images=0,
        final_metrics=("fid", "memo"),
        n_samples=6,
        n_real=6,
        n_train=6,
        feature=FakeFeatures(),
        noise_floor=("fid",),
        feature_cache=None,
    )
    trainer = _trainer(tmp_path, [cb])
    trainer.fit(FakeGAN(spatial_dims), datamodule=FakeData(spatial_dims))
    timing = json.loads((tmp_path / "metrics_final.json").read_text())["time"]
    assert timing["eval_seconds"] > 0 and timing["fit_seconds"] >= timing["eval_seconds"]
    assert 0 <= timing["eval_share"] <= 1
    assert timing["eval_share"] == pytest.approx(timing["eval_seconds"] / timing["fit_seconds"])
    assert float(trainer.callback_metrics["time/eval_share"]) == pytest.approx(timing["eval_share"])
    # A resumed run carries both clocks over.
    again = EvaluationCallback(feature=None)
    again.load_state_dict(cb.state_dict())
    assert again.eval_seconds == pytest.approx(cb.eval_seconds) and again.fit_seconds() > 0
    # The pipeline's summary shows the share beside the final metrics.
    from gan_init.experiment.pipeline import _outcome

    outcome = _outcome(None, tmp_path, 1, log=tmp_path / "log.txt")
    assert outcome["metrics"]["time/eval_share"] == timing["eval_share"]
    assert "eval/fid" in outcome["metrics"] and "eval/eval_share" not in outcome["metrics"]


def test_failure_rule_labels_in_order():
    from gan_init.callbacks.evaluation import FailureRule

    rule = FailureRule(collapse_msssim_margin=0.1, not_converged_swd=100.0)
    ok = {"full/swd": 50.0, "msssim_fake": 0.35, "msssim_real": 0.3}
    assert rule.label(ok, diverged=False) == "none"
    assert rule.label(ok, diverged=True) == "diverged"
    assert rule.label({**ok, "nonfinite_samples": 1.0}, diverged=False) == "diverged"
    assert rule.label({**ok, "msssim_fake": 0.45}, diverged=False) == "collapsed"
    assert rule.label({**ok, "full/swd": 150.0}, diverged=False) == "not_converged"
    assert rule.label({"msssim_fake": 0.3, "msssim_real": 0.3}, diverged=False) == "not_converged"
    assert FailureRule().label({"full/swd": 1e9}, diverged=False) == "none"  # no rule, no label
