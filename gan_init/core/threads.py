"""How many CPU threads a gan-init process computes with, chosen in the project, not the shell.

Left alone, every torch process takes all cores; two processes on one machine then fight (OpenMP
threads spin while they wait), which measured here made a 2D sweep run 31x slower beside a
second one. The policy: the CPUs this process may use (``os.sched_getaffinity``), shared among
the runs that run at once (``parallel``), minus the data-loader workers that run beside the
trainer, at least one. Measured on the 2-core machine: ``gan-init fit`` of
``noise_2d_sweep.yaml`` (one loader worker) alone takes 26.0 s at 1 thread and 28.5 s at 2, so the
policy's choice there (2 CPUs - 1 worker = 1 thread) is also the faster one.

Override, first that is set wins: ``--threads N`` on any ``gan-init`` command, the environment
variable ``GAN_INIT_THREADS``, then ``OMP_NUM_THREADS``. The choice is put in the environment, so
the child processes of ``pipeline`` and ``sweep`` use it too, and recorded in each run's summary.
With more than one thread, OpenMP's wait policy is passive (threads sleep instead of spinning),
unless ``OMP_WAIT_POLICY`` is set.
"""

from __future__ import annotations

import os
import sys

THREADS_ENV = "GAN_INIT_THREADS"
# The configs' data loaders run one worker beside the trainer (``data.init_args.num_workers``).
DEFAULT_WORKERS = 1


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a SLURM or taskset share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def choose_threads(cpus: int, workers: int = DEFAULT_WORKERS, parallel: int = 1) -> int:
    """Intra-op threads per run when ``parallel`` runs share ``cpus``, each with ``workers``
    data-loader workers: the run's share of the CPUs less its workers, at least one."""
    if cpus < 1 or workers < 0 or parallel < 1:
        raise ValueError(
            f"choose_threads: expected cpus >= 1, workers >= 0, parallel >= 1, got {cpus}, "
            f"{workers}, {parallel}"
        )
    return max(1, cpus // parallel - workers)


def _positive(option: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        fix = f"{option} 1" if option.startswith("-") else f"{option}=1"
        raise ValueError(
            f"{option}: expected a whole number of threads >= 1, got {value!r}; e.g. {fix}"
        )
    return n


def split_threads_option(argv: list[str]) -> tuple[int | None, list[str]]:
    """``--threads N`` / ``--threads=N`` taken out of ``argv`` (anywhere in it)."""
    rest, threads, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--threads",):
            if i + 1 >= len(argv):
                raise ValueError("--threads: expected a number after it; e.g. --threads 1")
            threads, i = _positive("--threads", argv[i + 1]), i + 2
            continue
        if arg.startswith("--threads="):
            threads = _positive("--threads", arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return threads, rest


def resolve_threads(option: int | None, environ=os.environ, cpus: int | None = None) -> int:
    """The thread count: the option, else ``GAN_INIT_THREADS``, else ``OMP_NUM_THREADS``, else
    the policy (``choose_threads``) on the available CPUs."""
    if option is not None:
        return option
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        if environ.get(name):
            return _positive(name, environ[name])
    return choose_threads(available_cpus() if cpus is None else cpus)


def apply_threads(threads: int, environ=os.environ) -> None:
    """Use ``threads`` in this process and its children."""
    environ[THREADS_ENV] = str(threads)
    environ["OMP_NUM_THREADS"] = str(threads)
    environ["MKL_NUM_THREADS"] = str(threads)
    if threads > 1:
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:  # imported already (in-process callers): set it directly
        import torch

        torch.set_num_threads(threads)


def current_threads() -> int | None:
    """The thread count this process was given by the policy (None outside ``gan-init``)."""
    value = os.environ.get(THREADS_ENV)
    return int(value) if value else None
