"""The ``gan-init`` command (also ``python -m gan_init``).

Lightning's subcommands (``fit``, ``validate``, ``test``, ``predict``) go to LightningCLI, so any
config key can be set from YAML or the command line. The project's own subcommands (``data``,
``translate``, ``sample``, ...) each live in ``gan_init.commands.<name>`` with a
``main(argv) -> int``, imported only when used.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

from gan_init.registry import check_choice

# name -> (module, one-line help). A command is listed here only once its module exists.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("gan_init.commands.data", "check a dataset: what was found, and a PNG preview"),
    "sample": ("gan_init.commands.sample", "write samples from a noise-GAN checkpoint"),
    "translate": ("gan_init.commands.translate", "apply a CycleGAN generator to a NIfTI file"),
    "pipeline": (
        "gan_init.commands.pipeline",
        "the whole experiment: CycleGAN -> transfer -> noise GAN",
    ),
    "sweep": ("gan_init.commands.sweep", "run a W&B sweep file locally, resumably"),
    "report": ("gan_init.commands.report", "Markdown report with plots from a runs folder"),
    "evaluate": (
        "gan_init.commands.evaluate",
        "metrics of a noise-GAN checkpoint (SWD, FID, ...) as JSON",
    ),
    "memory": ("gan_init.commands.memory", "peak memory of one training step of a config"),
}

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _default_wandb_offline() -> None:
    # W&B works with no account: offline unless the user has a key or chose a mode.
    if "WANDB_MODE" not in os.environ and not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"


def _usage() -> str:
    lines = ["usage: gan-init COMMAND [options]", "", "Lightning commands (config via --config):"]
    lines += [f"  {name}" for name in LIGHTNING_COMMANDS]
    if EXTRA_COMMANDS:
        lines += ["", "gan-init commands:"]
        lines += [f"  {name:<10} {help_}" for name, (_, help_) in EXTRA_COMMANDS.items()]
    lines += ["", "gan-init COMMAND --help for the options of one command."]
    return "\n".join(lines)


# Lightning warnings that do not apply here and bury the progress output: the GANs step their own
# optimizers and checkpoint after the step on purpose; the noise GAN has no validation loop.
_QUIET = (
    ".*ModelCheckpoint with manual optimization.*",
    ".*`val_dataloader` but have no `validation_step`.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
)


def run_lightning(argv: list[str]) -> int:
    from gan_init.lightning_cli import GanInitCLI

    for message in _QUIET:
        warnings.filterwarnings("ignore", message=message)

    # LightningCLI reads sys.argv itself when it is what we were given (avoids its warning).
    GanInitCLI(args=None if argv == sys.argv[1:] else argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _default_wandb_offline()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command = argv[0]
    if command in LIGHTNING_COMMANDS:
        return run_lightning(argv)
    if command in EXTRA_COMMANDS:
        module = importlib.import_module(EXTRA_COMMANDS[command][0])
        return int(module.main(argv[1:]) or 0)
    try:
        check_choice("command", command, list(LIGHTNING_COMMANDS) + list(EXTRA_COMMANDS))
    except ValueError as err:
        print(f"gan-init: {err}\n\n{_usage()}", file=sys.stderr)
    return 2
