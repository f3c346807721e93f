"""``gan-init evaluate`` plumbing, with a fake noise GAN and a data module from a YAML config."""

from __future__ import annotations

import json
import os

import pytest
import torch

import data_modules
from gan_init import cli
from gan_init.cli.commands import evaluate as evaluate_cmd
from gan_init.core.assets import asset_dir
from tests.builders.fakes import FakeData


class FakeGAN:
    spatial_dims = 2
    images_shown = 1234
    latent_dim = 4

    def sample(self, n, *, seed=None, ema=True):
        g = torch.Generator().manual_seed(seed or 0)
        return torch.rand(n, 1, 8, 8, generator=g) * 2 - 1  # below the data's 16 px


def test_evaluate_command_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate_cmd, "load_noise_gan", lambda path: FakeGAN())
    monkeypatch.setattr(data_modules, "FakeData", FakeData, raising=False)
    # the feature cache goes to a temporary GAN_INIT_DATA (with the real Inception linked in),
    # never into the user's ~/.cache
    data = tmp_path / "gan-init-data"
    data.mkdir()
    (data / "fid_inception").symlink_to(asset_dir("fid_inception"), target_is_directory=True)
    monkeypatch.setenv("GAN_INIT_DATA", str(data))
    config = tmp_path / "data.yaml"
    config.write_text("data:\n  class_path: data_modules.FakeData\n  init_args:\n    side: 16\n")
    out = tmp_path / "m.json"
    argv = ["evaluate", "--checkpoint", "x.ckpt", "--data", str(config)]
    argv += ["--metrics", "swd,msssim,memo", "--n", "12", "--out", str(out)]
    assert cli.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["resolution"] == [8, 8] and record["images_shown"] == 1234
    assert {"swd", "swd_8", "msssim_fake", "msssim_real", "memo_fraction"} <= set(record["metrics"])
    assert (tmp_path / "m.closest_pairs.png").is_file()
    assert '"swd"' in capsys.readouterr().out
    assert list((data / "features").glob("*.pt"))  # the real sets' features, cached there


def test_evaluate_command_rejects_typo(tmp_path):
    with pytest.raises(SystemExit):
        evaluate_cmd.main(
            ["--checkpoint", "x", "--metrics", "swd,fidd", "--out", str(tmp_path / "o")]
        )


def test_evaluate_listed_in_cli():
    assert cli.EXTRA_COMMANDS["evaluate"][0] == "gan_init.cli.commands.evaluate"


@pytest.mark.parametrize(
    "class_path",
    ["os.system", "test_metrics_evaluate_cmd.FakeData", "data_modules.Augmentation",
     "data_modules.base.json.dumps", "data_modules.NoSuchModule"],
)  # fmt: skip
def test_a_data_config_may_only_name_data_modules(tmp_path, monkeypatch, capsys, class_path):
    """``class_path: os.system`` ran a shell command; only data_modules data modules may be
    named, and nothing else is instantiated."""
    monkeypatch.setattr(evaluate_cmd, "load_noise_gan", lambda path: FakeGAN())
    marker = tmp_path / "ran"
    config = tmp_path / "data.yaml"
    config.write_text(f"data:\n  class_path: {class_path}\n  init_args: touch {marker}\n")
    argv = ["--checkpoint", "x.ckpt", "--data", str(config), "--out", str(tmp_path / "m.json")]
    assert evaluate_cmd.main(argv) == 2
    assert not marker.exists() and not os.path.exists(tmp_path / "m.json")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(config) in err[0] and f"class_path {class_path!r}" in err[0]
    assert (
        "data_modules.IcbmDataModule" in err[0] and "data_modules.NiftiFolderDataModule" in err[0]
    )
