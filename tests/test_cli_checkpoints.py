"""``gan-init fit --ckpt_path``: a resume loses no logged metric, and a checkpoint file never
runs code (``weights_only=True`` even when the environment tells torch otherwise)."""

import csv
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from gan_init.cli.lightning import GanInitCLI
from tests.builders.configs import noise_config


class RunsCode:
    """Unpickling this touches ``marker``: what a hostile checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def logged_config(tmp_path: Path) -> str:
    path = noise_config(tmp_path)
    config = yaml.safe_load(Path(path).read_text())
    config["trainer"].update(
        enable_checkpointing=True, log_every_n_steps=1, max_steps=2,
        default_root_dir=str(tmp_path / "run"),  # the run folder: logs and checkpoints follow it
        logger={"class_path": "pytorch_lightning.loggers.CSVLogger",
                "init_args": {"save_dir": str(tmp_path / "run"), "name": "csv", "version": ""}},
        callbacks=[{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True}}],
    )  # fmt: skip
    Path(path).write_text(yaml.safe_dump(config))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_sets_the_earlier_metrics_aside_instead_of_losing_them(tmp_path):
    config = logged_config(tmp_path)
    GanInitCLI(args=["fit", "--config", config])
    first = rows(tmp_path / "run" / "csv" / "metrics.csv")
    assert first
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    GanInitCLI(
        args=["fit", "--config", config, "--trainer.max_steps", "4", "--ckpt_path", str(last)]
    )
    assert rows(tmp_path / "run" / "csv" / "metrics.before-resume-1.csv") == first
    steps = {int(r["step"]) for r in rows(tmp_path / "run" / "csv" / "metrics.csv")}
    assert steps and min(steps) >= max(int(r["step"]) for r in first)


@pytest.fixture
def served(tmp_path):
    """``tmp_path/served`` over HTTP on the loopback (a checkpoint URL without the internet)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("where", ["file", "url"])
def test_a_checkpoint_that_needs_code_is_refused_not_run(tmp_path, monkeypatch, served, where):
    """Lightning loads a URL checkpoint with weights_only=False unless told otherwise, and a
    local one with torch's default, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns off."""
    folder, url = served
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {}, "payload": RunsCode(marker)}, folder / "evil.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # where URLs download to
    ckpt = str(folder / "evil.ckpt") if where == "file" else f"{url}/evil.ckpt"
    with pytest.raises(Exception, match="(?i)weights.only"):
        GanInitCLI(args=["fit", "--config", noise_config(tmp_path), "--ckpt_path", ckpt])
    assert not marker.exists()
