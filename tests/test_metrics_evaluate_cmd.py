"""``gan-init evaluate`` plumbing, with a fake noise GAN and a data module from a YAML config."""

from __future__ import annotations

import json

import pytest
import torch

from gan_init import cli
from gan_init.commands import evaluate as evaluate_cmd


class FakeData:
    """A data module with the agreed ``real_images`` interface (instantiated from YAML)."""

    def __init__(self, spatial_dims: int = 2, side: int = 16) -> None:
        self.spatial_dims = spatial_dims
        self.image_shape = (1, *(side,) * spatial_dims)

    def setup(self, stage=None) -> None:
        pass

    def real_images(self, n: int, split: str = "val") -> torch.Tensor:
        g = torch.Generator().manual_seed(0 if split == "val" else 1)
        return torch.rand(n, *self.image_shape, generator=g) * 2 - 1


class FakeGAN:
    spatial_dims = 2
    images_shown = 1234
    latent_dim = 4

    def sample(self, n, *, seed=None, ema=True):
        g = torch.Generator().manual_seed(seed or 0)
        return torch.rand(n, 1, 8, 8, generator=g) * 2 - 1  # below the data's 16 px


def test_evaluate_command_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate_cmd, "load_noise_gan", lambda path: FakeGAN())
    config = tmp_path / "data.yaml"
    config.write_text(
        "data:\n  class_path: test_metrics_evaluate_cmd.FakeData\n  init_args:\n    side: 16\n"
    )
    out = tmp_path / "m.json"
    argv = ["evaluate", "--checkpoint", "x.ckpt", "--data", str(config)]
    argv += ["--metrics", "swd,msssim,memo", "--n", "12", "--out", str(out)]
    assert cli.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["resolution"] == [8, 8] and record["images_shown"] == 1234
    assert {"swd", "swd_8", "msssim_fake", "msssim_real", "memo_fraction"} <= set(record["metrics"])
    assert (tmp_path / "m.closest_pairs.png").is_file()
    assert '"swd"' in capsys.readouterr().out


def test_evaluate_command_rejects_typo(tmp_path):
    with pytest.raises(SystemExit):
        evaluate_cmd.main(
            ["--checkpoint", "x", "--metrics", "swd,fidd", "--out", str(tmp_path / "o")]
        )


def test_evaluate_listed_in_cli():
    assert cli.EXTRA_COMMANDS["evaluate"][0] == "gan_init.commands.evaluate"
