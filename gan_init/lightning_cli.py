"""LightningCLI for both stages: models and data modules are picked by ``class_path`` in YAML.

Shortcut flags of the weight transfer (also plain ``--key=value`` arguments of a W&B sweep)::

    gan-init fit --config experiments/configs/noise_2d.yaml --init_strategy cyclegan --source CKPT

``--init_strategy``, ``--source``, ``--freeze_fraction``, ``--freeze_images`` and
``--allow_scale_mismatch`` configure the
``gan_init.callbacks.WeightTransfer`` of ``trainer.callbacks`` (one is added when the config has
none); the same callback can be written in YAML with ``class_path``/``init_args``.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from gan_init.files import keep_csv_before_resume


def _load_weights_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``--ckpt_path`` loads with ``torch.load(weights_only=True)`` unless the user says
    ``--weights_only false``: left unset, torch's default can be switched off by an environment
    variable (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) and a checkpoint file could run code."""
    if kwargs.get("weights_only") is None:
        kwargs = {**kwargs, "weights_only": True}
    return kwargs


# Shortcut flags of the weight transfer, named as the WeightTransfer arguments they set.
TRANSFER_FLAGS = (
    "init_strategy", "source", "freeze_images", "freeze_fraction", "allow_scale_mismatch",
)  # fmt: skip


class GanInitCLI(LightningCLI):
    """``gan-init fit --config experiments/configs/<stage>_<2d|3d>.yaml [--key value ...]``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(LightningModule, LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--init_strategy", type=str | None, default=None,
            help="noise GAN only: init strategy of WeightTransfer (scratch, cyclegan, "
            "cyclegan_frozen, cyclegan_g_and_d, cyclegan_untrained, cyclegan_t1_to_t2)",
        )  # fmt: skip
        parser.add_argument(
            "--source", type=str | None, default=None,
            help="noise GAN only: CycleGAN checkpoint (gan-init or canonical) to transfer from",
        )  # fmt: skip
        parser.add_argument(
            "--freeze_images", type=int | None, default=None,
            help="noise GAN only: images shown while cyclegan_frozen keeps transferred weights "
            "frozen (overrides --freeze_fraction)",
        )  # fmt: skip
        parser.add_argument(
            "--freeze_fraction", type=float | None, default=None,
            help="noise GAN only: cyclegan_frozen keeps each transferred part frozen for this "
            "fraction of its active images in the ProgressiveSchedule (default 0.25)",
        )  # fmt: skip
        parser.add_argument(
            "--allow_scale_mismatch", type=bool | None, default=None,
            help="noise GAN only: transfer from a CycleGAN trained at another image size than "
            "the noise GAN's (refused otherwise); the transfer summary records scale_ratio",
        )  # fmt: skip

    def _transfer_flags(self) -> dict[str, object]:
        return {k: v for k in TRANSFER_FLAGS if (v := self._get(self.config, k)) is not None}

    def before_instantiate_classes(self) -> None:
        # Fail on a typo'd strategy before data and models are built.
        from gan_init.callbacks.weight_transfer import check_strategy

        strategy = self._transfer_flags().get("init_strategy")
        if strategy is not None:
            check_strategy(str(strategy))

    # ---- the subcommands: LightningCLI calls these instead of the trainer's when defined

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """``trainer.fit``; on a resume (``--ckpt_path``), each CSV logger's ``metrics.csv`` is
        set aside first (Lightning's CSVLogger would delete it) so no logged value is lost."""
        if kwargs.get("ckpt_path"):
            for logger in self.trainer.loggers:
                if isinstance(logger, CSVLogger):
                    keep_csv_before_resume(logger.log_dir)
        self.trainer.fit(model, **_load_weights_only(kwargs))

    def validate(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.validate(model, **_load_weights_only(kwargs))

    def test(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.test(model, **_load_weights_only(kwargs))

    def predict(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.predict(model, **_load_weights_only(kwargs))

    def before_fit(self) -> None:
        """Point the ``WeightTransfer`` callback at the shortcut flags' values."""
        from gan_init.callbacks.weight_transfer import WeightTransfer
        from gan_init.models.progressive import ProgressiveGAN

        flags = self._transfer_flags()
        if not flags:
            return
        if not isinstance(self.model, ProgressiveGAN):
            raise ValueError(
                f"--{' --'.join(flags)}: weight transfer starts a noise GAN "
                f"(gan_init.models.ProgressiveGAN), but this run trains a "
                f"{type(self.model).__name__}; drop these flags"
            )
        found = [cb for cb in self.trainer.callbacks if isinstance(cb, WeightTransfer)]
        if len(found) > 1:
            raise ValueError(
                f"trainer.callbacks holds {len(found)} WeightTransfer callbacks; keep one"
            )
        if found:
            found[0].configure(**flags)
        else:
            self.trainer.callbacks.append(WeightTransfer(**flags))
