"""LightningCLI for both stages: models and data modules are picked by ``class_path`` in YAML.

Shortcut flags of the weight transfer (also plain ``--key=value`` arguments of a W&B sweep)::

    gan-init fit --config experiments/configs/noise_2d.yaml --init_strategy cyclegan --source CKPT

``--init_strategy``, ``--source``, ``--freeze_fraction``, ``--freeze_images`` and
``--allow_scale_mismatch`` configure the
``gan_init.callbacks.WeightTransfer`` of ``trainer.callbacks`` (one is added when the config has
none); the same callback can be written in YAML with ``class_path``/``init_args``.

Every fit also gets a ``gan_init.callbacks.PreemptionCheckpoint`` (SIGTERM/SIGUSR1 save
``last.ckpt``, exit status 143) and holds the lock ``.<checkpoint folder>.lock`` beside each
``ModelCheckpoint`` folder, so two trainers never write the same ``last.ckpt``.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from gan_init.callbacks.preemption import STOPPED_EXIT_CODE, PreemptionCheckpoint
from gan_init.core.errors import UsageError, one_line
from gan_init.core.files import keep_csv_before_resume
from gan_init.core.processes import run_lock


def _load_weights_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``--ckpt_path`` loads with ``torch.load(weights_only=True)`` unless the user says
    ``--weights_only false``: left unset, torch's default can be switched off by an environment
    variable (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) and a checkpoint file could run code."""
    if kwargs.get("weights_only") is None:
        kwargs = {**kwargs, "weights_only": True}
    return kwargs


def _strategies_help() -> str:
    from gan_init.transfer.strategies import INIT_STRATEGIES

    return INIT_STRATEGIES.describe()


# Shortcut flags of the weight transfer, named as the WeightTransfer arguments they set.
TRANSFER_FLAGS = (
    "init_strategy", "source", "freeze_images", "freeze_fraction", "allow_scale_mismatch",
)  # fmt: skip


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
        parser.add_argument(
            "--init_strategy", type=str | None, default=None,
            help="noise GAN only: init strategy of WeightTransfer. " + _strategies_help(),
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
            try:
                check_strategy(str(strategy))
            except ValueError as err:
                raise UsageError(f"--{err}") from None
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.get("enable_progress_bar") is False:
            # Lightning refuses a progress-bar callback with the bar off: the user asked for none.
            config.trainer.callbacks = [
                cb
                for cb in config.trainer.get("callbacks") or []
                if not str(getattr(cb, "class_path", "")).endswith("TrainingProgress")
            ]
        if self.subcommand == "fit":
            self.run_dir = self._place_run(config)

    def _place_run(self, config: Any) -> Path | None:
        """Send everything the run writes (loggers, checkpoints) into one folder, the run's: the
        ``--run_dir`` option or ``trainer.default_root_dir``; refuse a fresh run in a folder that
        holds another run's checkpoints."""
        trainer = config.trainer
        if config.get("run_dir"):
            trainer.default_root_dir = str(config.run_dir)
        if not trainer.get("default_root_dir"):
            return None
        run_dir = Path(trainer.default_root_dir)
        loggers = trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if not hasattr(logger, "class_path"):
                continue
            kind = str(logger.class_path).rsplit(".", 1)[-1]
            args = logger.init_args
            if kind == "CSVLogger":
                args.save_dir, args.name, args.version = str(run_dir), "csv", ""
            elif kind in ("WandbLogger", "TensorBoardLogger") or "save_dir" in args:
                args.save_dir = str(run_dir)
        for callback in trainer.get("callbacks") or []:
            if str(getattr(callback, "class_path", "")).endswith("ModelCheckpoint"):
                callback.init_args.dirpath = str(run_dir / "checkpoints")
        previous = sorted((run_dir / "checkpoints").glob("*.ckpt"))
        if previous and not config.get("ckpt_path"):
            if not config.get("overwrite"):
                raise UsageError(
                    f"--run_dir {run_dir}: holds the checkpoints of another run "
                    f"({previous[-1].name}); resume it with --ckpt_path "
                    f"{run_dir / 'checkpoints' / 'last.ckpt'}, start elsewhere with --run_dir "
                    "NEW_FOLDER, or set them aside with --overwrite true"
                )
            aside = run_dir / f"checkpoints.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            (run_dir / "checkpoints").rename(aside)
            print(f"gan-init fit: the earlier checkpoints of {run_dir} are now in {aside}")
        print(f"gan-init fit: run folder {run_dir}", flush=True)
        return run_dir

    def instantiate_classes(self) -> None:
        """Build data, model and trainer; a configuration the classes refuse (a knob out of
        range, an unknown choice) is one line, exit status 2."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
            raise UsageError(one_line(str(err))) from err

    # ---- the subcommands: LightningCLI calls these instead of the trainer's when defined

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """``trainer.fit``, holding the lock of each checkpoint folder; on a resume
        (``--ckpt_path``), each CSV logger's ``metrics.csv`` is set aside first (Lightning's
        CSVLogger would delete it) so no logged value is lost. Stopped by SIGTERM/SIGUSR1 (after
        saving ``last.ckpt``): exit status 143, never 0."""
        with ExitStack() as locks:
            for folder in _checkpoint_folders(self.trainer):
                locks.enter_context(
                    run_lock(folder.parent, "gan-init fit", wait=False, name=f".{folder.name}.lock")
                )
            if kwargs.get("ckpt_path"):
                for logger in self.trainer.loggers:
                    if isinstance(logger, CSVLogger):
                        keep_csv_before_resume(logger.log_dir)
            try:
                self.trainer.fit(model, **_load_weights_only(kwargs))
            except SIGTERMException:
                raise SystemExit(STOPPED_EXIT_CODE) from None
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
        from gan_init.callbacks.weight_transfer import WeightTransfer

        if not any(isinstance(cb, PreemptionCheckpoint) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(PreemptionCheckpoint())
        flags = self._transfer_flags()
        transfers = [cb for cb in self.trainer.callbacks if isinstance(cb, WeightTransfer)]
        if flags:
            self._configure_transfer(flags, transfers)
        if not self._get(self.config, "ckpt_path"):  # a resume transfers nothing
            for transfer in self.trainer.callbacks:
                if isinstance(transfer, WeightTransfer):
                    self._check_source(transfer)

    def _check_source(self, transfer: Any) -> None:
        """Load and match the transfer source now, before data setup, loggers and run folders:
        a bad ``--source`` is one line and exit status 2, not a traceback after setup."""
        from gan_init.models.progressive import ProgressiveGAN

        if not isinstance(self.model, ProgressiveGAN):
            return  # WeightTransfer.setup names this mistake
        try:
            transfer.check(self.model)
        except (ValueError, OSError) as err:  # CheckpointError is a ValueError
            message = " ".join(line.strip() for line in str(err).splitlines())
            where = "" if message.startswith(str(transfer.source)) else f" {transfer.source}"
            raise UsageError(f"--source{where}: {message}") from None

    def _configure_transfer(self, flags: dict[str, object], found: list[Any]) -> None:
        from gan_init.callbacks.weight_transfer import WeightTransfer
        from gan_init.models.progressive import ProgressiveGAN

        if not isinstance(self.model, ProgressiveGAN):
            raise ValueError(
                f"--{' --'.join(flags)}: weight transfer starts a noise GAN "
                f"(gan_init.models.ProgressiveGAN), but this run trains a "
                f"{type(self.model).__name__}; drop these flags"
            )
        if len(found) > 1:
            raise ValueError(
                f"trainer.callbacks holds {len(found)} WeightTransfer callbacks; keep one"
            )
        if found:
            found[0].configure(**flags)
        else:
            self.trainer.callbacks.append(WeightTransfer(**flags))


def _checkpoint_folders(trainer: Any) -> list[Path]:
    """The folders ModelCheckpoints were told to write into (``dirpath``); a folder Lightning
    picks itself is under a fresh logger version, never shared."""
    folders = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if cb.dirpath]
    return list(dict.fromkeys(f.resolve() for f in folders))


def where_things_are(trainer: Any, run_dir: Path | None) -> str:
    """The last lines of a training command: where its checkpoint, metrics, samples and W&B
    offline run are, and how to sync W&B later."""
    folder = Path(run_dir or trainer.default_root_dir)
    lines = ["", f"run folder:  {folder}"]
    for cb in trainer.checkpoint_callbacks:
        last = Path(cb.dirpath or folder / "checkpoints") / "last.ckpt"
        if last.is_file():
            lines.append(f"checkpoint:  {last}  (resume: --ckpt_path {last})")
            if getattr(trainer.lightning_module, "generator_ema", None) is not None:
                lines.append(
                    f"samples:     gan-init sample --checkpoint {last} --out {folder / 'samples'}"
                )
            break
    for name in ("csv/metrics.csv", "metrics_final.json"):
        if (folder / name).is_file():
            lines.append(f"metrics:     {folder / name}")
    offline = sorted((folder / "wandb").glob("offline-run-*"))
    if offline:
        lines.append(f"W&B offline: {offline[-1]}  (upload later: wandb sync {offline[-1]})")
    return "\n".join(lines)
