"""LightningCLI for both stages: models and data modules are picked by ``class_path`` in YAML.

This module is the Lightning glue only: the parser's extra arguments, Lightning's hooks, and
``weights_only`` checkpoint loading. Where a fit writes and how it runs there (locks, CSV kept
over a resume, exit codes) is ``gan_init.cli.run_folder``; the weight transfer's shortcut flags
(``--init_strategy``, ``--source``, ...) are ``gan_init.cli.transfer_flags``. Every fit also gets
a ``gan_init.callbacks.PreemptionCheckpoint`` (SIGTERM/SIGUSR1 save ``last.ckpt``).
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from gan_init.callbacks.preemption import PreemptionCheckpoint
from gan_init.cli.run_folder import fit_in_run_folder, place_run, where_things_are
from gan_init.cli.transfer_flags import (
    TRANSFER_FLAGS,
    add_transfer_arguments,
    check_strategy_flag,
    configure_transfer,
)
from gan_init.core.errors import UsageError, one_line


def _load_weights_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``--ckpt_path`` loads with ``torch.load(weights_only=True)`` unless the user says
    ``--weights_only false``: left unset, torch's default can be switched off by an environment
    variable (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) and a checkpoint file could run code."""
    if kwargs.get("weights_only") is None:
        kwargs = {**kwargs, "weights_only": True}
    return kwargs


class GanInitCLI(LightningCLI):
    """``gan-init fit --config experiments/configs/<stage>_<2d|3d>.yaml [--key value ...]``."""

    def __init__(self, *args, **kwargs) -> None:
        # Parse errors raise (one line, exit 2, in gan_init.cli) instead of printing the usage
        # of every trainer option.
        quiet = {"exit_on_error": False}
        kwargs.setdefault(
            "parser_kwargs",
            {**quiet, **{c: dict(quiet) for c in ("fit", "validate", "test", "predict")}},
        )
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(LightningModule, LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_dir", type=str | None, default=None,
            help="the run's folder: logs, checkpoints and W&B files go here (default: the "
            "config's trainer.default_root_dir); a folder holding another run's checkpoints is "
            "refused unless --ckpt_path resumes it or --overwrite true sets them aside",
        )  # fmt: skip
        parser.add_argument(
            "--overwrite", type=bool, default=False,
            help="start a fresh run in a --run_dir that holds another run's checkpoints (they "
            "are moved to checkpoints.replaced-<time>/, not deleted)",
        )  # fmt: skip
        add_transfer_arguments(parser)

    def _transfer_flags(self) -> dict[str, object]:
        return {k: v for k in TRANSFER_FLAGS if (v := self._get(self.config, k)) is not None}

    def before_instantiate_classes(self) -> None:
        check_strategy_flag(self._transfer_flags())
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.get("enable_progress_bar") is False:
            # Lightning refuses a progress-bar callback with the bar off: the user asked for none.
            config.trainer.callbacks = [
                cb
                for cb in config.trainer.get("callbacks") or []
                if not str(getattr(cb, "class_path", "")).endswith("TrainingProgress")
            ]
        if self.subcommand == "fit":
            self.run_dir = place_run(config)

    def instantiate_classes(self) -> None:
        """Build data, model and trainer; a configuration the classes refuse (a knob out of
        range, an unknown choice) is one line, exit status 2."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
            raise UsageError(one_line(str(err))) from err

    # ---- the subcommands: LightningCLI calls these instead of the trainer's when defined

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """``trainer.fit`` in the run folder (``gan_init.cli.run_folder.fit_in_run_folder``),
        then where its outputs are."""
        fit_in_run_folder(
            self.trainer,
            lambda: self.trainer.fit(model, **_load_weights_only(kwargs)),
            resume=bool(kwargs.get("ckpt_path")),
        )
        if self.trainer.is_global_zero:
            print(where_things_are(self.trainer, getattr(self, "run_dir", None)), flush=True)

    def validate(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.validate(model, **_load_weights_only(kwargs))

    def test(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.test(model, **_load_weights_only(kwargs))

    def predict(self, model: LightningModule, **kwargs: Any) -> Any:
        return self.trainer.predict(model, **_load_weights_only(kwargs))

    def before_fit(self) -> None:
        """Add a ``PreemptionCheckpoint``; point the ``WeightTransfer`` callback at the shortcut
        flags' values and check its source."""
        if not any(isinstance(cb, PreemptionCheckpoint) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(PreemptionCheckpoint())
        resume = bool(self._get(self.config, "ckpt_path"))
        configure_transfer(
            self._transfer_flags(), self.model, self.trainer.callbacks, resume=resume
        )
