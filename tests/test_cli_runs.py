"""`gan-init fit` as a user runs it (subprocess): one run, one folder, chosen by the user; mistakes
cost one line (exit status 2, no traceback, nothing written); the last lines say where things are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gan_init.experiment.pipeline import CONFIGS, load_yaml
from tests.tiny_configs import shrink

ENV = {**os.environ, "WANDB_MODE": "disabled"}


def gan_init(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gan_init", *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def tiny_noise_config(tmp_path: Path, dims: int) -> Path:
    config = shrink(load_yaml(CONFIGS / f"noise_{dims}d.yaml"), 16)
    config["trainer"]["callbacks"] = [
        cb for cb in config["trainer"]["callbacks"] if "Evaluation" not in cb["class_path"]
    ]
    path = tmp_path / f"noise_{dims}d.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model.init_args.lrr=3"], "--model: Problem with given class_path"),
        (["--model.init_args.generator.init_args.grow=stme"], "did you mean 'stem'"),
        (["--init_strategy", "cyclgan"], "--init_strategy: unknown init strategy 'cyclgan'"),
        (["--init_strategy", "cyclegan", "--source", "missing.ckpt"], "--source"),
    ],
    ids=["unknown-key", "bad-choice", "bad-strategy", "missing-source"],
)
def test_configuration_mistakes_cost_one_line_and_write_nothing(tmp_path, args, expected):
    config = tiny_noise_config(tmp_path, 2)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = tmp_path / "run"
    done = gan_init("fit", "--config", str(config), "--run_dir", str(run), *args, cwd=cwd)
    assert expected in one_line_error(done)
    assert not list(cwd.iterdir()) and not run.exists()


def test_debug_shows_the_traceback(tmp_path):
    config = tiny_noise_config(tmp_path, 2)
    done = gan_init(
        "fit", "--config", str(config), "--init_strategy", "cyclgan", "--debug", cwd=tmp_path
    )
    assert done.returncode != 0 and "Traceback" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_one_run_one_folder_chosen_by_the_user(tmp_path, dims):
    config = tiny_noise_config(tmp_path, dims)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = tmp_path / "my-run"
    done = gan_init("fit", "--config", str(config), "--run_dir", str(run), cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"gan-init fit: run folder {run}" in done.stdout
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run / "csv" / "metrics.csv").is_file()
    assert f"checkpoint:  {last}" in done.stdout and f"--ckpt_path {last}" in done.stdout
    assert "gan-init sample --checkpoint" in done.stdout
    assert not list(cwd.iterdir()), "the run wrote into the working directory"

    # A fresh run in a folder holding another run's checkpoints: refused, nothing touched.
    before = last.stat().st_mtime_ns
    again = gan_init("fit", "--config", str(config), "--run_dir", str(run), cwd=cwd)
    assert "--ckpt_path" in one_line_error(again) and last.stat().st_mtime_ns == before
    # Told to overwrite: the old checkpoints are set aside, not deleted.
    over = gan_init(
        "fit", "--config", str(config), "--run_dir", str(run), "--overwrite", "true", cwd=cwd
    )
    assert over.returncode == 0, over.stderr[-3000:]
    aside = list(run.glob("checkpoints.replaced-*/last.ckpt"))
    assert len(aside) == 1 and last.is_file()
