"""``gan-init fit`` under preemption: SIGTERM/SIGUSR1 save ``last.ckpt`` and the run resumes; one
``last.ckpt`` per run folder even when the folder moved; a bad ``--source`` is one line before
anything is set up; two trainers never share a checkpoint folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning import Callback

from gan_init import cli
from gan_init.cli.lightning import GanInitCLI
from gan_init.experiment.pipeline import resolve_config
from tests.builders.checkpoints import save_cyclegan
from tests.builders.configs import tiny_noise_gan_config
from tests.builders.networks import tiny_spec
from tests.builders.processes import REPO, subprocess_env, wait_for


class TouchAfterSteps(Callback):
    """Writes ``marker`` once ``steps`` optimizer steps are done: the test then knows the fit
    is training (no sleeping on a guess)."""

    def __init__(self, marker: str, steps: int = 4) -> None:
        self.marker, self.steps = marker, steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.steps and not os.path.exists(self.marker):
            Path(self.marker).touch()


def fit_config(
    folder: Path, dims: int, *, max_steps: int, every_n: int = 10_000, callbacks=()
) -> dict:
    """A tiny noise GAN on blobs, checkpointing into ``folder/checkpoints`` (periodic saves
    every ``every_n`` steps: by default never, so a checkpoint on disk came from a signal)."""
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": max_steps, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False,
            "default_root_dir": str(folder),
            "callbacks": [
                *callbacks,
                {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(folder / "checkpoints"), "save_last": True,
                               "save_top_k": 0, "every_n_train_steps": every_n}},
            ],
        },
        **tiny_noise_gan_config(dims),
    }  # fmt: skip


def write(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def saved_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "dims, signum",
    [(2, signal.SIGTERM), (3, signal.SIGTERM), (2, signal.SIGUSR1)],
    ids=["2d-TERM", "3d-TERM", "2d-USR1"],
)
def test_a_signal_saves_last_ckpt_and_the_run_resumes_from_it(tmp_path, dims, signum):
    marker = tmp_path / "training"
    touch = {"class_path": "tests.test_preemption.TouchAfterSteps",
             "init_args": {"marker": str(marker)}}  # fmt: skip
    config = write(
        tmp_path / "fit.yaml",
        fit_config(tmp_path / "run", dims, max_steps=10**6, callbacks=[touch]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_init", "fit", "--config", config],
        env=subprocess_env(),
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, "the fit to train")
        assert proc.poll() is None, "the fit ended before it was signalled"
        proc.send_signal(signum)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 143, "a stopped fit must not look finished (exit 0)"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stopped_at = saved_step(last)
    assert stopped_at >= 4
    # The requeued job: the same command with --ckpt_path continues from there.
    resumed = GanInitCLI(
        args=["fit", "--config", config, "--trainer.max_steps", str(stopped_at + 4),
              "--ckpt_path", str(last)]
    )  # fmt: skip
    assert resumed.trainer.global_step == stopped_at + 4
    assert saved_step(last) == stopped_at + 4
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_a_moved_run_folder_resumes_into_its_one_last_ckpt(tmp_path, dims):
    """Lightning's version counter named the resumed checkpoint last-v1.ckpt when last.ckpt
    was written under another path; the pipeline read the stale last.ckpt."""
    first = tmp_path / "first"
    base = fit_config(first, dims, max_steps=4, every_n=2)
    config = resolve_config(base, first, seed=0, run_name="r", group="g")
    GanInitCLI(args=["fit", "--config", write(tmp_path / "first.yaml", config)])
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    config = resolve_config(base, moved, seed=0, run_name="r", group="g")
    path = write(tmp_path / "moved.yaml", config)
    last = moved / "checkpoints" / "last.ckpt"
    GanInitCLI(args=["fit", "--config", path, "--trainer.max_steps", "8", "--ckpt_path", str(last)])
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["last.ckpt"]
    assert saved_step(last) == 8
    assert saved_step(first / "checkpoints" / "last.ckpt") == 4  # the original is untouched


@pytest.mark.parametrize("dims", [2, 3])
def test_a_run_ended_by_its_schedule_saves_its_final_weights(tmp_path, dims):
    """The schedule stops the run between periodic saves (every 4 steps here); last.ckpt must
    hold the final step, the one the final metrics and samples come from."""
    schedule = {"class_path": "gan_init.callbacks.ProgressiveSchedule",
                "init_args": {"train_images": 6, "fade_images": 2, "batch_size": 2}}  # fmt: skip
    config = fit_config(tmp_path / "run", dims, max_steps=-1, every_n=4, callbacks=[schedule])
    cli_run = GanInitCLI(args=["fit", "--config", write(tmp_path / "fit.yaml", config)])
    final_step = cli_run.trainer.global_step
    assert final_step % 4 != 0, "the test needs a run ending between periodic saves"
    assert saved_step(tmp_path / "run" / "checkpoints" / "last.ckpt") == final_step


def test_shipped_configs_keep_one_last_ckpt():
    for path in sorted((REPO / "experiments" / "configs").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        for cb in config["trainer"]["callbacks"]:
            if cb["class_path"].endswith("ModelCheckpoint"):
                assert cb["init_args"].get("enable_version_counter") is False, path.name


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("problem", ["missing", "truncated", "wrong kind", "wrong width", "dims"])
def test_a_bad_source_is_one_line_before_any_setup(tmp_path, monkeypatch, capsys, dims, problem):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    config = fit_config(run, dims, max_steps=2)
    config["trainer"]["logger"] = [
        {"class_path": "pytorch_lightning.loggers.CSVLogger",
         "init_args": {"save_dir": str(run), "name": "csv"}},
        {"class_path": "pytorch_lightning.loggers.WandbLogger",
         "init_args": {"save_dir": str(run), "project": "p", "offline": True}},
    ]  # fmt: skip
    path = write(tmp_path / "fit.yaml", config)
    source = tmp_path / "source.ckpt"
    if problem == "truncated":
        save_cyclegan(source, tiny_spec(dims))
        source.write_bytes(source.read_bytes()[:300])
    elif problem == "wrong kind":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, source)
    elif problem == "wrong width":
        save_cyclegan(source, tiny_spec(dims, base_width=8))
    elif problem == "dims":
        save_cyclegan(source, tiny_spec(5 - dims))
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["fit", "--config", path, "--init_strategy", "cyclegan", "--source", str(source)]
    monkeypatch.setattr(sys, "argv", ["gan-init", *argv])  # as typed (no LightningCLI warning)
    code = cli.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        len(err) == 1
        and err[0].startswith("gan-init fit: error: --source")
        and str(source) in err[0]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no wandb/


def test_a_second_trainer_on_the_same_checkpoint_folder_is_refused(tmp_path, monkeypatch, capsys):
    from filelock import FileLock

    run = tmp_path / "run"
    path = write(tmp_path / "fit.yaml", fit_config(run, 2, max_steps=2))
    run.mkdir()
    held = FileLock(run / ".checkpoints.lock")
    held.acquire()
    monkeypatch.setattr(sys, "argv", ["gan-init", "fit", "--config", path])
    try:
        assert cli.main() == 2
    finally:
        held.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by another process" in err[0] and str(run) in err[0]
    assert not (run / "checkpoints").exists()
    assert cli.main() == 0  # free again: it trains
    assert (run / "checkpoints" / "last.ckpt").is_file()
