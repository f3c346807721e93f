"""One CLI dialect (underscores canonical, dashes accepted), help with choices and defaults,
``--device`` where inference runs, group-readable outputs, sample NIfTIs with a real affine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gan_init.core.files import write_json
from gan_init.transfer.strategies import INIT_STRATEGIES
from tests.builders.checkpoints import save_noise_gan

ROOT = Path(__file__).resolve().parents[1]


def gan_init(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "gan_init", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow  # a Python with torch per call
def test_pipeline_help_lists_every_strategy_and_the_defaults(tmp_path):
    result = gan_init("pipeline", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for name in INIT_STRATEGIES:
        assert name in text
    assert "(default: cyclegan)" in text and "--init_strategy NAME, --init-strategy NAME" in text


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample", "evaluate", "translate", "data check"])
def test_help_shows_underscored_options_with_dashes_accepted(tmp_path, command):
    result = gan_init(*command.split(), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    if command in ("sample", "evaluate"):
        assert "--device {auto,cpu,cuda}" in text and "(default: auto)" in text
    option = {"sample": "batch_size", "evaluate": "n_real", "translate": "batch_size"}.get(
        command, "skip_bad_subjects"
    )
    assert f"--{option}" in text and f"--{option.replace('_', '-')}" in text


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["--voxel_mm", "--voxel-mm"])
def test_sample_3d_nifti_has_voxel_size_and_intensity_range(tmp_path, spelling):
    ckpt = save_noise_gan(tmp_path, 3, 8)
    out = tmp_path / "out"
    result = gan_init(
        "sample", "--checkpoint", ckpt, "--n", "2", "--out", str(out), spelling, "2.5",
        "--device", "cpu", "--batch_size", "1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = nib.load(out / "sample_000.nii.gz")
    np.testing.assert_allclose(image.affine, np.diag([2.5, 2.5, 2.5, 1.0]))
    assert (float(image.header["cal_min"]), float(image.header["cal_max"])) == (-1.0, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.ckpt", "out"]


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "summary.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
