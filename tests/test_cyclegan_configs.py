"""The CycleGAN configs: the model section builds through jsonargparse (as LightningCLI does),
dims agree with the data section, and the backbone equals the noise config of the same scale."""

from pathlib import Path

import pytest
import yaml
from jsonargparse import ArgumentParser
from pytorch_lightning import LightningModule

from gan_init.models import CycleGAN

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
NAMES = ["cyclegan_2d", "cyclegan_3d", "cyclegan_2d_gpu", "cyclegan_3d_gpu"]


def build_model(section: dict) -> LightningModule:
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningModule, "model")
    config = parser.parse_object({"model": section})
    return parser.instantiate_classes(config).model


@pytest.mark.parametrize(
    "name", [n if "gpu" not in n else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]
)
def test_config_builds_the_cyclegan(name):
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    model = build_model(config["model"])
    assert isinstance(model, CycleGAN)
    data = config["data"]["init_args"]
    assert data["mode"] == "cyclegan" and model.spatial_dims == data["spatial_dims"]
    assert model.d_t1.spatial_dims == data["spatial_dims"]
    assert config["trainer"]["default_root_dir"] == f"runs/{name}"
    callbacks = {c["class_path"]: c.get("init_args", {}) for c in config["trainer"]["callbacks"]}
    assert callbacks["pytorch_lightning.callbacks.ModelCheckpoint"]["save_last"] is True
    assert "gan_init.callbacks.CycleGANImageGrid" in callbacks
    loggers = [lg["class_path"].rsplit(".", 1)[-1] for lg in config["trainer"]["logger"]]
    assert loggers == ["WandbLogger", "CSVLogger"]
    epochs = model.hparams.epochs_constant + model.hparams.epochs_decay
    assert config["trainer"]["max_epochs"] == epochs
    noise = CONFIGS / name.replace("cyclegan", "noise")
    noise = noise.with_suffix(".yaml")
    if noise.is_file():  # the noise stage copies trunk/decoder/head: same backbone knobs
        noise_backbone = yaml.safe_load(noise.read_text())["model"]["init_args"]["generator"]
        ours = config["model"]["init_args"]["generator"]["init_args"]["backbone"]
        assert noise_backbone["init_args"]["backbone"] == ours


def test_full_size_2d_generator_is_the_canonical_size():
    config = yaml.safe_load((CONFIGS / "cyclegan_2d_gpu.yaml").read_text())
    backbone = config["model"]["init_args"]["generator"]["init_args"]["backbone"]
    assert (backbone["base_width"], backbone["n_blocks"]) == (64, 9)  # 11,365,633 parameters
