"""The sweep's run table goes to W&B as a table artifact (offline here)."""

import csv

from gan_init.experiment.wandb_log import log_run_table


def test_run_table_is_logged_as_a_wandb_table_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    table = tmp_path / "init_strategy_2d.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, ["init_strategy", "grow", "seed", "data", "eval/swd"])
        writer.writeheader()
        writer.writerow({"init_strategy": "scratch", "grow": "stem", "seed": 0, "data": "icbm",
                         "eval/swd": 3.5})  # fmt: skip
        writer.writerow({"init_strategy": "cyclegan", "grow": "stem", "seed": 0, "data": "icbm",
                         "eval/swd": 2.5})  # fmt: skip
    folder = log_run_table(table)
    assert folder.is_dir() and folder.name.startswith("offline-run-")
    assert list(folder.glob("*.wandb"))  # the offline record `wandb sync` uploads
    tables = list(folder.rglob("runs*.table.json"))
    assert tables and "cyclegan" in tables[0].read_text()
