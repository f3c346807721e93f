"""Mistakes cost one line: how every ``gan-init`` command reports a user's error.

A configuration or input error (an unknown key, a knob mismatch, a missing or damaged file, a bad
strategy, wrong dims, data that cannot train) is printed as one line that names the option or
file, what was expected and the fix, and the command exits with status 2. Unexpected errors keep
their traceback. ``--debug`` (anywhere on the command line) or ``GAN_INIT_DEBUG=1`` shows the
traceback of a user error too.
"""

from __future__ import annotations

import os
import re
import sys

USAGE_EXIT = 2


class UsageError(ValueError):
    """A command-line or configuration mistake found before anything ran: printed as one line,
    exit status 2, no run folder left behind."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Errors that are always the input's fault (named error classes of the project)."""
    from data_modules.base import DataError
    from gan_init.core.files import CorruptFileError
    from gan_init.core.processes import LockedError
    from gan_init.transfer.checkpoints import CheckpointError

    return (UsageError, DataError, CheckpointError, CorruptFileError, LockedError)


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` is on the command line (it is removed) or ``GAN_INIT_DEBUG`` is set."""
    debug = "--debug" in argv or os.environ.get("GAN_INIT_DEBUG", "") not in ("", "0")
    return debug, [a for a in argv if a != "--debug"]


_NOISE = (
    re.compile(r"^Expected a <class 'NoneType'>"),
    re.compile(r"^Does not validate against any of the Union subtypes"),
    re.compile(r"^(Subtypes|Given value type|Given value):"),
    re.compile(r"^Errors:$"),
)


def one_line(message: str) -> str:
    """The error text of jsonargparse (a tree of 'Errors:' and 'Given value' lines) or of any
    exception, reduced to what the user must read: the failing key and the innermost reason."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    key = None
    reasons: list[str] = []
    for line in lines:
        found = re.match(r'^Parser key "([^"]+)":?$', line)
        if found:
            key = key or found.group(1)
            continue
        text = line.removeprefix("- ").strip()
        if any(p.match(text) for p in _NOISE):
            continue
        reasons.append(text)
    text = " ".join(reasons) if reasons else " ".join(lines)
    text = re.sub(r"\s+", " ", text)
    return f"--{key}: {text}" if key and not text.startswith("--") else text


def report(command: str, err: BaseException) -> int:
    """Print ``err`` as one line for ``command`` and return the exit status (2)."""
    print(f"gan-init {command}: error: {one_line(str(err))}", file=sys.stderr)
    return USAGE_EXIT
