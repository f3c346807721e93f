"""The command line: ``gan-init fit --config ... --init_strategy NAME --source CKPT`` (also the
``--key=value`` form a W&B sweep passes), a WeightTransfer written in YAML, and clear refusals."""

import json

import pytest
import torch
import yaml

from gan_init.callbacks import WeightTransfer
from gan_init.cli.lightning import GanInitCLI
from tests.builders.checkpoints import save_cyclegan
from tests.builders.configs import noise_config
from tests.builders.networks import tiny_spec


def transfers(cli) -> list[WeightTransfer]:
    return [cb for cb in cli.trainer.callbacks if isinstance(cb, WeightTransfer)]


def test_shortcut_flags_add_and_run_the_transfer(tmp_path, saved_cyclegan):
    cyclegan = saved_cyclegan.model
    cli = GanInitCLI(
        args=["fit", "--config", noise_config(tmp_path), "--init_strategy", "cyclegan",
              "--source", str(saved_cyclegan.path)]
    )  # fmt: skip
    (transfer,) = transfers(cli)
    assert transfer.init_strategy == "cyclegan" and transfer.source == str(saved_cyclegan.path)
    summary = json.loads((tmp_path / "run" / "transfer_summary.json").read_text())
    assert summary["parts"]["trunk"]["copied_tensors"] == 4
    # The generator was then trained two steps; the EMA started from the transferred head.
    ema_head = cli.model.generator_ema.head.conv.weight
    assert torch.allclose(ema_head, cyclegan.g_t2_to_t1.head.conv.weight, atol=1e-3)


def test_sweep_style_flags_configure_the_yaml_callback(tmp_path, saved_cyclegan):
    callbacks = [
        {
            "class_path": "gan_init.callbacks.WeightTransfer",
            "init_args": {"init_strategy": "scratch", "freeze_images": 6},
        }
    ]
    cli = GanInitCLI(
        args=["fit", f"--config={noise_config(tmp_path, callbacks)}",
              "--init_strategy=cyclegan_frozen", f"--source={tmp_path / 'c.ckpt'}"]
    )  # fmt: skip
    (transfer,) = transfers(cli)
    assert transfer.init_strategy == "cyclegan_frozen" and transfer.freeze_images == 6
    assert [r.images for r in transfer.rules] == [6] * 4


def test_scale_and_freeze_fraction_flags_reach_the_callback(tmp_path):
    save_cyclegan(tmp_path / "c.ckpt", tiny_spec(2), image_size=32)  # the noise GAN renders 16
    schedule = {
        "class_path": "gan_init.callbacks.ProgressiveSchedule",
        "init_args": {"train_images": 4, "fade_images": 0},
    }
    args = ["fit", "--config", noise_config(tmp_path, [schedule]),
            "--init_strategy", "cyclegan_frozen", "--source", str(tmp_path / "c.ckpt")]  # fmt: skip
    with pytest.raises(ValueError, match="--allow_scale_mismatch true"):
        GanInitCLI(args=args)
    cli = GanInitCLI(args=[*args, "--allow_scale_mismatch", "true", "--freeze_fraction", "0.5"])
    (transfer,) = transfers(cli)
    assert transfer.allow_scale_mismatch and transfer.freeze_fraction == 0.5
    summary = json.loads((tmp_path / "run" / "transfer_summary.json").read_text())
    assert summary["scale_ratio"] == 2.0
    assert {p["release_at_images"] for p in summary["release"]} == {4}  # 0.5 x 8 images


def test_flags_are_refused_for_a_cyclegan_and_typos_get_did_you_mean(tmp_path):
    with pytest.raises(ValueError, match=r"did you mean 'cyclegan_frozen'"):
        GanInitCLI(args=["fit", "--config", noise_config(tmp_path), "--init_strategy", "frozen"])
    config = yaml.safe_load(open(noise_config(tmp_path)))
    spec = tiny_spec(2).to_dict()
    config["model"] = {
        "class_path": "gan_init.models.CycleGAN",
        "init_args": {
            "generator": {
                "class_path": "gan_init.networks.CycleGANGenerator",
                "init_args": {"backbone": spec},
            },
            "discriminator": {
                "class_path": "gan_init.networks.PatchGANDiscriminator",
                "init_args": {"base_width": 4, "n_layers": 1},
            },
        },
    }
    (tmp_path / "cyclegan.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="weight transfer starts a noise GAN.*CycleGAN"):
        GanInitCLI(
            args=["fit", "--config", str(tmp_path / "cyclegan.yaml"), "--init_strategy", "cyclegan"]
        )
