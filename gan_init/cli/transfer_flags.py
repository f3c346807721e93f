"""The weight transfer's shortcut flags of ``gan-init fit`` (also plain ``--key=value`` arguments
of a W&B sweep)::

    gan-init fit --config experiments/configs/noise_2d.yaml --init_strategy cyclegan --source CKPT

``--init_strategy``, ``--source``, ``--freeze_fraction``, ``--freeze_images`` and
``--allow_scale_mismatch`` configure the ``gan_init.callbacks.WeightTransfer`` of
``trainer.callbacks`` (one is added when the config has none); the same callback can be written
in YAML with ``class_path``/``init_args``.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import LightningModule
from pytorch_lightning.cli import LightningArgumentParser

from gan_init.core.errors import UsageError

# Named as the WeightTransfer arguments they set.
TRANSFER_FLAGS = (
    "init_strategy", "source", "freeze_images", "freeze_fraction", "allow_scale_mismatch",
)  # fmt: skip


def _strategies_help() -> str:
    from gan_init.transfer.strategies import INIT_STRATEGIES

    return INIT_STRATEGIES.describe()


def add_transfer_arguments(parser: LightningArgumentParser) -> None:
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


def check_strategy_flag(flags: dict[str, object]) -> None:
    """A typo'd ``--init_strategy`` is one line, before data and models are built."""
    from gan_init.transfer.strategies import check_strategy

    strategy = flags.get("init_strategy")
    if strategy is not None:
        try:
            check_strategy(str(strategy), "--init_strategy")
        except ValueError as err:
            raise UsageError(str(err)) from None


def configure_transfer(
    flags: dict[str, object], model: LightningModule, callbacks: list[Any], *, resume: bool
) -> None:
    """Point the ``WeightTransfer`` of ``callbacks`` at the flags' values (add one when there is
    none) and, unless the fit resumes (a resume transfers nothing), check its source now."""
    from gan_init.callbacks.weight_transfer import WeightTransfer

    found = [cb for cb in callbacks if isinstance(cb, WeightTransfer)]
    if flags:
        _apply_flags(flags, model, callbacks, found)
    if not resume:
        for transfer in callbacks:
            if isinstance(transfer, WeightTransfer):
                _check_source(transfer, model)


def _apply_flags(
    flags: dict[str, object], model: LightningModule, callbacks: list[Any], found: list[Any]
) -> None:
    from gan_init.callbacks.weight_transfer import WeightTransfer
    from gan_init.models.progressive import ProgressiveGAN

    if not isinstance(model, ProgressiveGAN):
        raise ValueError(
            f"--{' --'.join(flags)}: weight transfer starts a noise GAN "
            f"(gan_init.models.ProgressiveGAN), but this run trains a "
            f"{type(model).__name__}; drop these flags"
        )
    if len(found) > 1:
        raise ValueError(f"trainer.callbacks holds {len(found)} WeightTransfer callbacks; keep one")
    if found:
        found[0].configure(**flags)
    else:
        callbacks.append(WeightTransfer(**flags))


def _check_source(transfer: Any, model: LightningModule) -> None:
    """Load and match the transfer source now, before data setup, loggers and run folders:
    a bad ``--source`` is one line and exit status 2, not a traceback after setup."""
    from gan_init.models.progressive import ProgressiveGAN

    if not isinstance(model, ProgressiveGAN):
        return  # WeightTransfer.setup names this mistake
    try:
        transfer.check(model)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        message = " ".join(line.strip() for line in str(err).splitlines())
        where = "" if message.startswith(str(transfer.source)) else f" {transfer.source}"
        raise UsageError(f"--source{where}: {message}") from None
