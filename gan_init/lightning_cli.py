"""LightningCLI for both stages: models and data modules are picked by ``class_path`` in YAML."""

from __future__ import annotations

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningCLI


class GanInitCLI(LightningCLI):
    """``gan-init fit --config experiments/configs/<stage>_<2d|3d>.yaml [--key value ...]``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(LightningModule, LightningDataModule, *args, **kwargs)
