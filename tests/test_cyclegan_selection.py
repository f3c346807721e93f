"""Which CycleGAN weights the noise GAN starts from: the epoch the stage's ModelCheckpoint kept as
best on validation data (as every sweep so far did, when last.ckpt was only written beside the
best), now named, recorded with its epoch and scores; the final weights without a monitor."""

import csv
from pathlib import Path

import torch

from gan_init.experiment.pipeline import last_values, selected_checkpoint


def _checkpoint(path: Path, epoch: int, step: int, callbacks: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "global_step": step, "callbacks": callbacks or {}}, path)
    return path


def test_the_best_epoch_is_selected_and_named(tmp_path):
    folder = tmp_path / "moved" / "checkpoints"
    _checkpoint(folder / "best-epoch=001.ckpt", 1, 512)
    state = {"monitor": "val/psnr_t2_to_t1", "best_model_score": torch.tensor(17.2),
             # written before the run folder was moved: found by name in its folder
             "best_model_path": "/elsewhere/checkpoints/best-epoch=001.ckpt"}  # fmt: skip
    last = _checkpoint(folder / "last.ckpt", 5, 1536, {"ModelCheckpoint{'monitor': 'x'}": state})
    chosen, info = selected_checkpoint(last)
    assert chosen == folder / "best-epoch=001.ckpt"
    assert info["epoch"] == 1 and info["global_step"] == 512
    assert info["rule"] == "best val/psnr_t2_to_t1 on validation data"
    assert abs(info["score"] - 17.2) < 1e-5


def test_without_a_monitored_best_the_final_weights_are_used(tmp_path):
    last = _checkpoint(tmp_path / "checkpoints" / "last.ckpt", 5, 1536)
    assert selected_checkpoint(last) == (
        last, {"rule": "final weights", "epoch": 5, "global_step": 1536, "score": None}
    )  # fmt: skip
    gone = {"ModelCheckpoint{}": {"monitor": "val/x", "best_model_path": "/nowhere/best.ckpt"}}
    last = _checkpoint(tmp_path / "checkpoints" / "last.ckpt", 5, 1536, gone)
    assert selected_checkpoint(last)[0] == last


def test_validation_scores_of_the_selected_epoch(tmp_path):
    (tmp_path / "csv").mkdir()
    with open(tmp_path / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "step", "val/psnr", "train/loss"])
        w.writeheader()
        w.writerows([
            {"epoch": 0, "step": 9, "val/psnr": 16.0}, {"epoch": 1, "step": 19, "val/psnr": 17.5},
            {"epoch": 1, "step": 19, "train/loss": 0.3}, {"epoch": 2, "step": 29, "val/psnr": 16.5},
        ])  # fmt: skip
    assert last_values(tmp_path, "val/", epoch=1) == {"val/psnr": 17.5}
    assert last_values(tmp_path, "val/") == {"val/psnr": 16.5}  # the final epoch's
