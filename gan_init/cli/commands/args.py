"""The one CLI dialect of gan-init's own commands.

Options are written with underscores (``--n_real``, ``--runs_dir``: the canonical form, as in
``gan-init fit --trainer.max_steps``); the same option with dashes (``--n-real``) is accepted too.
Help lists every option's default (and choices, where it has them).
"""

from __future__ import annotations

import argparse
from typing import Any


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Defaults and choices in the help text (as ``ArgumentDefaultsHelpFormatter``, but not
    "default: None", nor twice); descriptions kept as written (their examples are commands)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.choices is not None and action.metavar is not None:
            text += f" (one of: {', '.join(str(c) for c in action.choices)})"
        default = action.default
        shown = not (default is None or default is False or default is argparse.SUPPRESS)
        shown = shown and "default" not in text
        if shown and action.option_strings:
            text += " (default: %(default)s)"
        return text.strip()


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose long options take both ``--a_b`` (shown, canonical) and
    ``--a-b``; sub-command parsers are of the same kind."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *names: str, **kwargs: Any):
        kwargs.setdefault("help", "")  # an empty help still shows the default
        spelled: list[str] = []
        for name in names:
            if name.startswith("--"):
                canonical = "--" + name[2:].replace("-", "_")
                for form in (canonical, "--" + name[2:].replace("_", "-")):
                    if form not in spelled:
                        spelled.append(form)
            else:
                spelled.append(name)
        return super().add_argument(*spelled, **kwargs)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` (auto: cuda when available)."""
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"],
        help="where the networks run (auto: cuda when available)",
    )  # fmt: skip


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cuda`` without a GPU is a one-line error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available here; use --device cpu")
    return device
