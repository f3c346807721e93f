"""gan-init data check: summary, PNG preview, and a one-line error on bad input."""

import pytest
from PIL import Image

from gan_init import cli
from gan_init.assets import AssetMissingError, asset_path
from tests.test_data_nifti_folder import ixi_folder


def test_check_folder_prints_subjects_and_writes_a_preview(tmp_path, capsys):
    root = ixi_folder(tmp_path / "data")
    out = tmp_path / "preview.png"
    args = ["data", "check", str(root), "--size", "16", "--out", str(out)]
    assert cli.main(args + ["--cache-dir", str(tmp_path / "cache")]) == 0
    text = capsys.readouterr().out
    assert "subjects:    5 with T1 and T2" in text and "(12, 14, 10)" in text
    assert Image.open(out).size[0] > 100


def test_check_reports_bad_data_in_one_line(tmp_path, capsys):
    assert cli.main(["data", "check", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("dims", ["2", "3"])
def test_check_icbm(tmp_path, capsys, dims):
    try:
        asset_path("icbm152", "t1.nii")
    except AssetMissingError:  # pragma: no cover - only without `make data`
        pytest.skip("ICBM templates not fetched (make data)")
    out = tmp_path / "icbm.png"
    assert (
        cli.main(
            ["data", "check", "icbm", "--dims", dims, "--size", "16", "--n", "3", "--out", str(out)]
        )
        == 0
    )
    assert "IcbmDataModule" in capsys.readouterr().out
    # One row per sample, columns T1 | T2 (3D: three planes each), tiles at least 128 px.
    tiles = 2 if dims == "2" else 6
    width, height = Image.open(out).size
    assert height > 3 * 128 and width > tiles * 128
