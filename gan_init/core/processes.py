"""Child processes that never outlive their parent, and locks on run folders.

``gan-init pipeline`` and ``gan-init sweep`` run ``gan-init fit``/``sample``/``pipeline`` as child
processes. A child must not train on as an orphan when its parent dies (a restart would race it in
the same run folder), whatever killed the parent:

- Linux: the child asks the kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``),
  so even a SIGKILL of the parent sends the child SIGTERM, on which ``gan-init fit`` saves its
  ``last.ckpt`` and exits (``gan_init.callbacks.PreemptionCheckpoint``).
- Everywhere: SIGTERM, SIGINT and SIGUSR1 received by the parent are forwarded to the child; the
  parent then waits for it and raises ``Interrupted``. Each level forwards to its own child
  (sweep -> pipeline -> fit). The child runs in its own process group, so a terminal's Ctrl-C
  reaches only the top process and travels down this chain once; the signal goes to the child
  itself, not its group: PyTorch data-loader workers treat a SIGTERM that does not come from
  their parent as a crash, which would abort the trainer before it saves (they end with it).
  Off Linux, a SIGKILL of the parent still orphans the child (no kernel support): the
  run-folder locks below then keep a restart from racing it.

Locks are ``filelock`` locks (``flock`` on POSIX): released by the kernel when their process dies,
so a killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from filelock import FileLock, Timeout

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)


class Interrupted(RuntimeError):
    """The parent received ``signum`` while a child ran; the child got it too and has exited."""

    def __init__(self, signum: int, returncode: int | None = None) -> None:
        self.signum = signum
        self.returncode = returncode
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "killed by signal"


class LockedError(RuntimeError):
    """Another process holds the lock of a run folder."""


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_setup(parent_pid: int, prctl: Callable[..., int] | None) -> Callable[[], None]:
    """What the child runs between fork and exec (only async-signal-safe calls)."""

    def setup() -> None:
        os.setpgid(0, 0)  # own process group: a terminal's Ctrl-C comes through the parent
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)

    return setup


@contextmanager
def forward_signals(procs: Collection[subprocess.Popen], received: list[int]) -> Iterator[None]:
    """While the block runs, send the processes in ``procs`` (read when a signal comes: it may
    grow and shrink) the signals this process gets, and append each signal to ``received``."""

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for proc in list(procs):
            try:
                proc.send_signal(signum)  # a no-op for a child already waited for
            except (ProcessLookupError, PermissionError):
                pass

    installed = {}
    try:
        for signum in FORWARDED_SIGNALS:
            try:
                installed[signum] = signal.signal(signum, forward)
            except ValueError:  # not the main thread: no forwarding possible
                break
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


def start_child(
    cmd: list[str], *, env: dict[str, str] | None = None, stdout: IO[bytes] | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, dying with this process (module docstring), and
    return without waiting; ``stdout``: a file for its output and errors (else ours). Wait for
    it inside ``forward_signals``."""
    setup = _child_setup(os.getpid(), _libc_prctl()) if os.name == "posix" else None
    return subprocess.Popen(
        cmd, env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None,
        preexec_fn=setup,  # noqa: PLW1509 (no threads run our code between fork and exec)
    )  # fmt: skip


def run_child(cmd: list[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> int:
    """Run ``cmd`` to its end and return its exit code; it dies with this process (see module
    docstring). ``log``: the child writes its output there (appended) and it is copied to this
    process's stdout as it grows; the child never writes into a pipe of ours, so it can still
    save its checkpoint after we died. Raises ``Interrupted`` when a forwarded signal stopped it.
    """
    received: list[int] = []
    out: IO[bytes] | None = open(log, "ab") if log is not None else None  # noqa: SIM115
    try:
        start = out.tell() if out is not None else 0
        proc = start_child(cmd, env=env, stdout=out)
        with forward_signals([proc], received):
            code = _wait_teeing(proc, log, start) if log is not None else _wait(proc)
    finally:
        if out is not None:
            out.close()
    if received:
        raise Interrupted(received[0], code)
    return code


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except InterruptedError:  # pragma: no cover (PEP 475 retries already)
            continue


def _wait_teeing(proc: subprocess.Popen, log: Path, start: int) -> int:
    # Chunks, not lines: progress bars redraw with \r and would otherwise show only at the end.
    screen = getattr(sys.stdout, "buffer", None)
    with open(log, "rb") as f:
        f.seek(start)

        def copy() -> None:
            while chunk := f.read(1 << 16):
                if screen is not None:
                    screen.write(chunk)
                    screen.flush()
                else:
                    sys.stdout.write(chunk.decode(errors="replace"))

        while proc.poll() is None:
            copy()
            time.sleep(0.2)
        copy()
    return int(proc.returncode)


@contextmanager
def run_lock(folder: Path, what: str, *, wait: bool, name: str = ".lock") -> Iterator[Path]:
    """Hold ``folder/name`` while the block runs. Held by another process: ``wait`` prints one
    line and waits for it, else raises ``LockedError`` saying who to wait for."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise LockedError(
                f"{folder} is in use by another process ({what}; lock {path}); wait for it to "
                "end or stop it, then run the same command again"
            ) from None
        print(f"{what}: {folder} is in use by another process; waiting for it", flush=True)
        lock.acquire()
    try:
        yield path
    finally:
        lock.release()
