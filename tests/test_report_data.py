"""The report never pairs runs trained on different data: one line, naming both runs."""

import csv
import json
from pathlib import Path

import pytest

from gan_init.core.errors import UsageError
from gan_init.experiment.report import write_report


def run_on(root: Path, strategy: str, seed: int, data: dict | None) -> Path:
    """A finished 2D run whose SWD falls with images shown; ``data`` its summary's data record
    (None: a run from before it was recorded)."""
    run = root / "noise_2d" / f"{strategy}-stem-seed{seed}"
    (run / "csv").mkdir(parents=True)
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "progress/images_shown", "eval/swd"])
        writer.writeheader()
        for step in range(0, 50, 10):
            swd = 100 / (1 + step / 10) + seed + (strategy == "scratch")
            writer.writerow({"step": step, "progress/images_shown": step * 16, "eval/swd": swd})
    summary = {
        "status": "finished", "dims": 2, "init_strategy": strategy, "grow": "stem", "seed": seed,
        "metrics": {"eval/swd": 10.0}, "run_dir": str(run), "noise_config": "noise_2d",
    }  # fmt: skip
    if data is not None:
        summary["data"] = data
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_runs_on_different_data_are_not_paired(tmp_path):
    ixi = {"name": "IXI-1a2b3c", "root": "/data/IXI", "layout": "ixi"}
    for seed in range(3):
        run_on(tmp_path / "same", "scratch", seed, None)  # before data was recorded: ICBM
        run_on(tmp_path / "same", "cyclegan", seed, {"name": "icbm"})
        run_on(tmp_path / "mixed", "scratch", seed, {"name": "icbm"})
        run_on(tmp_path / "mixed", "cyclegan", seed, ixi)
    assert write_report(tmp_path / "same").is_file()
    with pytest.raises(UsageError) as err:
        write_report(tmp_path / "mixed")
    message = str(err.value)
    assert "\n" not in message and "were trained on different data" in message
    assert "IXI-1a2b3c" in message and "icbm" in message
