"""``gan-init sample``: PNG grid (2D), NIfTI volumes + montage (3D), reproducible from a seed."""

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from gan_init.cli import main
from tests.builders.checkpoints import save_noise_gan


def run(ckpt, out, *extra):
    assert main(["sample", "--checkpoint", ckpt, "--n", "5", "--out", str(out), *extra]) == 0
    return np.asarray(Image.open(out / "samples.png"))


def test_sample_2d_png_grid_reproducible(tmp_path):
    ckpt = save_noise_gan(tmp_path, 2, 16)
    a = run(ckpt, tmp_path / "a", "--seed", "1")
    b = run(ckpt, tmp_path / "b", "--seed", "1", "--batch-size", "2")
    c = run(ckpt, tmp_path / "c", "--seed", "2")
    d = run(ckpt, tmp_path / "d", "--seed", "1", "--no-ema")
    assert a.dtype == np.uint8 and a.shape[0] >= 2 * 16 and a.shape[1] >= 3 * 16  # 3 x 2 grid
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_sample_3d_nifti_and_montage(tmp_path):
    ckpt = save_noise_gan(tmp_path, 3, 8)
    run(ckpt, tmp_path / "out", "--seed", "0")
    volumes = sorted((tmp_path / "out").glob("sample_*.nii.gz"))
    assert len(volumes) == 5
    data = nib.load(volumes[0]).get_fdata()
    assert data.shape == (8, 8, 8) and np.abs(data).max() <= 1.0


def test_sample_refuses_missing_save_noise_gan(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path)])
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("dims", [2, 3])
def test_pipeline_samples_in_process_equal_the_sample_command(tmp_path, dims):
    """The pipeline writes its samples in its own process: the same files `gan-init sample
    --seed 0` writes, and the command line in the run's log."""
    from gan_init.experiment import pipeline

    ckpt = save_noise_gan(tmp_path, dims, 8)
    log = tmp_path / "log.txt"
    assert pipeline._sample(ckpt, 5, tmp_path / "pipe", log=log) is None
    command = run(ckpt, tmp_path / "cmd", "--seed", "0")
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "pipe" / "samples.png")), command
    )
    if dims == 3:
        for mine, theirs in zip(
            sorted((tmp_path / "pipe").glob("*.nii.gz")),
            sorted((tmp_path / "cmd").glob("*.nii.gz")),
            strict=True,
        ):
            np.testing.assert_array_equal(nib.load(mine).get_fdata(), nib.load(theirs).get_fdata())
    written = 6 if dims == 3 else 1  # 3D: five volumes and the montage
    assert "gan-init sample --checkpoint" in log.read_text()
    assert f"wrote {written} file(s)" in log.read_text()
