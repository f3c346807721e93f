"""The ``gan-init`` command (also ``python -m gan_init``).

Lightning's subcommands (``fit``, ``validate``, ``test``, ``predict``) go to LightningCLI, so any
config key can be set from YAML or the command line. The project's own subcommands (``data``,
``translate``, ``sample``, ...) each live in ``gan_init.cli.commands.<name>`` with a
``main(argv) -> int``, imported only when used.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

from gan_init.core.registry import check_choice
from gan_init.core.threads import (
    apply_threads,
    resolve_threads,
    split_threads_option,
    threads_given,
)

# name -> (module, one-line help). A command is listed here only once its module exists.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("gan_init.cli.commands.data", "check a dataset: what was found, and a PNG preview"),
    "sample": ("gan_init.cli.commands.sample", "write samples from a noise-GAN checkpoint"),
    "translate": ("gan_init.cli.commands.translate", "apply a CycleGAN generator to a NIfTI file"),
    "pipeline": (
        "gan_init.cli.commands.pipeline",
        "the whole experiment: CycleGAN -> transfer -> noise GAN",
    ),
    "sweep": ("gan_init.cli.commands.sweep", "run a W&B sweep file locally, resumably"),
    "report": ("gan_init.cli.commands.report", "Markdown report with plots from a runs folder"),
    "evaluate": (
        "gan_init.cli.commands.evaluate",
        "metrics of a noise-GAN checkpoint (SWD, FID, ...) as JSON",
    ),
    "memory": ("gan_init.cli.commands.memory", "peak memory of one training step of a config"),
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
    lines += [
        "",
        "gan-init COMMAND --help for the options of one command; --debug shows the",
        "traceback of an error that is otherwise reported in one line; --threads N sets the",
        "CPU threads (default: this process's CPUs less one data-loader worker, at least 1).",
    ]
    return "\n".join(lines)


# Lightning warnings that do not apply here and bury the progress output: the GANs step their own
# optimizers and checkpoint after the step on purpose; the noise GAN has no validation loop.
_QUIET = (
    ".*ModelCheckpoint with manual optimization.*",
    ".*`val_dataloader` but have no `validation_step`.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
)


def end_process_group() -> None:
    """Destroy the DDP process group (if any) before the interpreter exits.

    Lightning leaves it alive after ``fit``; at interpreter exit gloo's C++ worker threads then
    still hold work objects whose tensors need the GIL of an interpreter being torn down, and the
    process aborts ("terminate called without an active exception", exit -6) now and then, after
    all its work is done (pytorch/pytorch#190489). Called on a clean exit only: after an error
    the other ranks may still be inside a collective.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_lightning(argv: list[str], debug: bool = False) -> int:
    import argparse

    from gan_init.cli.lightning import GanInitCLI
    from gan_init.core.errors import report, user_error_types

    for message in _QUIET:
        warnings.filterwarnings("ignore", message=message)

    # LightningCLI reads sys.argv itself when it is what we were given (avoids its warning).
    try:
        GanInitCLI(args=None if argv == sys.argv[1:] else argv)
    except (argparse.ArgumentError, *user_error_types()) as err:
        if debug:
            raise
        return report(argv[0], err)
    end_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    from gan_init.core.errors import debug_requested

    given = list(sys.argv[1:] if argv is None else argv)
    debug, argv = debug_requested(given)
    _default_wandb_offline()
    try:
        threads, argv = split_threads_option(argv)
        apply_threads(resolve_threads(threads), given=threads_given(threads))
    except ValueError as err:
        print(f"gan-init: {err}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command = argv[0]
    if command in LIGHTNING_COMMANDS:
        return run_lightning(given if given == argv else argv, debug)
    if command in EXTRA_COMMANDS:
        from gan_init.core.errors import report, user_error_types

        module = importlib.import_module(EXTRA_COMMANDS[command][0])
        try:
            return int(module.main(argv[1:]) or 0)
        except user_error_types() as err:
            if debug:
                raise
            return report(command, err)
    try:
        check_choice("command", command, list(LIGHTNING_COMMANDS) + list(EXTRA_COMMANDS))
    except ValueError as err:
        print(f"gan-init: {err}\n\n{_usage()}", file=sys.stderr)
    return 2
