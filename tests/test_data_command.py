"""gan-init data check: summary, PNG preview, and a one-line error on bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_init import cli
from gan_init.core.assets import AssetMissingError, asset_path
from tests.builders.nifti import NIFTI_SHAPE, ixi_folder, save_nifti


def test_check_folder_prints_subjects_and_writes_a_preview(tmp_path, capsys):
    root = ixi_folder(tmp_path / "data")
    out = tmp_path / "preview.png"
    args = ["data", "check", str(root), "--size", "16", "--out", str(out)]
    assert cli.main(args + ["--cache-dir", str(tmp_path / "cache")]) == 0
    text = capsys.readouterr().out
    assert "subjects:    5 with T1 and T2" in text and "(12, 14, 10)" in text
    assert Image.open(out).size[0] > 100


def test_check_reports_bad_data_in_one_line(tmp_path, capsys):
    assert cli.main(["data", "check", str(tmp_path / "missing")]) == 2
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
    rows = 2 if dims == "2" else 6
    assert Image.open(out).size[1] > rows * 100


def _check(*args: str) -> int:
    return cli.main(["data", "check", *map(str, args)])


@pytest.mark.parametrize("dims", ["2", "3"])
def test_check_refuses_an_all_zero_t1_naming_file_and_flag_or_skips_and_records_it(
    tmp_path, capsys, dims
):
    root = ixi_folder(tmp_path / "data")
    save_nifti(np.zeros(NIFTI_SHAPE, np.float32), root / "IXI001-HH-1201-T1.nii.gz")
    args = [root, "--dims", dims, "--size", "16", "--cache-dir", tmp_path / "cache"]
    out = tmp_path / "check" / "preview.png"
    assert _check(*args, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "IXI001-HH-1201-T1.nii.gz is constant (every voxel 0)" in err
    assert err.endswith("fix it, or pass --skip-bad-subjects to skip")
    assert not out.exists()
    with pytest.warns(UserWarning, match="skipping subject 'IXI001-HH-1201'"):
        assert _check(*args, "--out", out, "--skip-bad-subjects") == 0
    text = capsys.readouterr().out
    assert "skipped IXI001-HH-1201: T1 file" in text
    record = json.loads(out.with_suffix(".subjects.json").read_text())
    assert [s["subject"] for s in record["skipped"]] == ["IXI001-HH-1201"]
    assert Image.open(out).size[1] > 3 * 2 * 90  # a block per split


@pytest.mark.parametrize("dims", ["2", "3"])
def test_check_previews_every_split_a_run_uses_into_runs_by_default(
    tmp_path, capsys, monkeypatch, dims
):
    root = ixi_folder(tmp_path / "data", n=8)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [root, "--dims", dims, "--size", "16", "--cache-dir", tmp_path / "cache", "--n", "2"]
    assert _check(*args, "--roles") == 0
    text = capsys.readouterr().out
    for split in ("cyclegan", "noise", "val", "test"):
        assert f"  {split:<8}: " in text
    png = Path("runs") / "data_check" / f"data-{dims}d-16.png"
    assert f"preview:     {png}" in text
    written = {p.relative_to(work) for p in work.rglob("*") if p.is_file()}
    assert written == {png, png.with_suffix(".subjects.json")}  # nothing else in the cwd
    planes = 1 if dims == "2" else 3
    assert Image.open(png).size[1] > 4 * 2 * planes * 96  # four labelled blocks
    roles = json.loads(png.with_suffix(".subjects.json").read_text())["subjects"]
    assert sorted(roles) == ["cyclegan", "noise", "test", "val"]
    assert (
        _check(
            root,
            "--size",
            "16",
            "--cache-dir",
            tmp_path / "cache",
            "--roles",
            "--val-fraction",
            "0.5",
            "--test-fraction",
            "0.4",
        )
        == 2
    )
    assert "leave out --roles" in capsys.readouterr().err
