"""The report, from synthetic runs whose answer is known."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_init.report import collect_runs, images_to_reach, mean_ci, read_curves, write_report


def fake_run(
    root: Path, dims: int, strategy: str, grow: str, seed: int, speed: float, status="finished"
):
    """SWD falls as 100 / (1 + speed * images / 1000); sparse CSV rows like Lightning's CSVLogger."""
    run = root / f"{dims}d" / f"{strategy}-{grow}-seed{seed}"
    (run / "csv").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(0, 101, 10):
        images = step * 16
        rows.append({"step": step, "progress/images_shown": images, "train/loss_d": 1.0})
        swd = 100 / (1 + speed * images / 1000) + rng.normal(0, 0.5)
        rows.append({"step": step, "progress/images_shown": images, "eval/swd": swd})
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "progress/images_shown", "train/loss_d", "eval/swd"])
        writer.writeheader()
        writer.writerows(rows)
    samples = run / "samples"
    samples.mkdir()
    Image.fromarray(np.full((8, 8), 127, np.uint8)).save(samples / "grid.png")
    summary = {
        "status": status, "dims": dims, "init_strategy": strategy, "grow": grow, "seed": seed,
        "metrics": {"eval/swd": rows[-1]["eval/swd"]}, "samples": str(samples),
    }  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def runs(tmp_path):
    for seed in range(3):
        for dims in (2, 3):
            fake_run(tmp_path, dims, "scratch", "stem", seed, speed=1.0)
            fake_run(tmp_path, dims, "cyclegan", "stem", seed, speed=4.0)
        fake_run(
            tmp_path,
            2,
            "cyclegan_untrained",
            "stem",
            seed,
            1.0,
            "diverged" if seed == 0 else "finished",
        )
    return tmp_path


def test_curves_take_images_shown_as_x(runs):
    xs, ys = read_curves(runs / "2d" / "scratch-stem-seed0" / "csv" / "metrics.csv")["eval/swd"]
    assert xs[0] == 0 and xs[-1] == 1600 and len(xs) == len(ys) == 11
    assert ys[0] > 90 and ys[-1] < 50


def test_report_finds_the_faster_strategy(runs):
    assert len(collect_runs(runs)) == 15
    report = write_report(runs)
    text = report.read_text()
    assert "## 2D and 3D side by side" in text and "## 2D" in text and "## 3D" in text
    row = next(line for line in text.splitlines() if line.startswith("| cyclegan (stem) | 3 |"))
    cells = [c.strip() for c in row.split("|")]
    assert float(cells[5]) < 0.01  # Welch p-value: a 4x faster strategy is clearly different
    assert "(3/3 runs)" in cells[7]  # reaches scratch's final SWD in every seed
    untrained = next(
        line for line in text.splitlines() if line.startswith("| cyclegan_untrained (stem) | 3 |")
    )
    assert untrained.split("|")[3].strip() == "1"  # one diverged run counted
    for png in report.parent.glob("*.png"):
        with Image.open(png) as im:
            im.verify()
    assert (report.parent / "noise_2d_eval_swd.png").is_file()
    assert (report.parent / "noise_2d_samples_cyclegan_stem.png").is_file()


def test_images_to_reach_and_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(
        2.4841, rel=1e-3
    )  # t(0.975, 2) * 1 / sqrt(3)

    class R:
        curves = {"eval/swd": (np.array([0, 10, 20]), np.array([5.0, 3.0, 1.0]))}

    assert images_to_reach(R, "eval/swd", 3.0) == 10
    assert images_to_reach(R, "eval/swd", 0.5) is None


def test_empty_runs_dir_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="make train-2d"):
        write_report(tmp_path)


def test_runs_of_different_configs_are_not_pooled(runs):
    run = fake_run(runs, 2, "scratch", "stem", 7, speed=1.0)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "noise_config": "noise_2d_sweep"}))
    text = write_report(runs).read_text()
    assert "## 2D, `noise_2d_sweep`" in text and "## 2D, `noise_2d`" in text
    header = next(line for line in text.splitlines() if line.startswith("| strategy (grow) | 2D"))
    assert (
        "2D `noise_2d`" in header and "2D `noise_2d_sweep`" in header and "3D `noise_3d`" in header
    )


def _write_csv(path: Path, points: list[tuple[int, float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "progress/images_shown", "eval/swd"])
        writer.writeheader()
        for images, swd in points:
            writer.writerow({"step": images, "progress/images_shown": images, "eval/swd": swd})


def test_a_resumed_run_keeps_its_curve_from_before_the_resume(tmp_path):
    """Lightning's CSVLogger deletes metrics.csv when a run resumes into its folder: the CLI sets
    it aside first, and the report joins the attempts (the later from where it starts)."""
    from gan_init.files import keep_csv_before_resume
    from gan_init.report import read_run_curves

    run = tmp_path / "noise_2d" / "scratch-stem-seed0"
    log_dir = run / "csv"
    log_dir.mkdir(parents=True)
    _write_csv(log_dir / "metrics.csv", [(100, 9.0), (200, 8.0), (300, 7.5)])
    assert keep_csv_before_resume(log_dir) == log_dir / "metrics.before-resume-1.csv"
    # the first attempt died after 300 images; its checkpoint was at 250
    _write_csv(log_dir / "metrics.csv", [(300, 7.0), (400, 6.0)])
    assert keep_csv_before_resume(log_dir) == log_dir / "metrics.before-resume-2.csv"
    _write_csv(log_dir / "metrics.csv", [(500, 5.0)])
    xs, ys = read_run_curves(run)["eval/swd"]
    assert xs.tolist() == [100, 200, 300, 400, 500]
    assert ys.tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]
