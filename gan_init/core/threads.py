"""How many CPU threads a gan-init process computes with, chosen in the project, not the shell.

Left alone, every torch process takes all cores; two processes on one machine then fight (OpenMP
threads spin while they wait), which measured here made a 2D sweep run 31x slower beside a
second one. The policy: the CPUs this process may use (``os.sched_getaffinity``), shared among
the runs that run at once (``parallel``), minus the data-loader workers that run beside the
trainer, at least one. Measured on the 2-core machine (benchmarks/thread_runs.py, whole runs of
each sweep config, docs/performance.md): alone, 2 threads with the passive wait below are at
most 1.10x faster than 1 (and 1.9x slower for the 2D CycleGAN); only OpenMP's spinning wait makes
2 threads clearly faster alone (up to 1.43x, 3D), at the price of the fight above as soon as
another run shares the cores. One thread per run loses nothing to a second run.

Runs at once (``gan-init sweep``, ``sweep_shares``): one run per CPU at one thread each, unless
threads per run are given (then the CPUs divided by them) or ``--parallel K`` is; each child
gets its share of the CPUs through its environment.

Override, first that is set wins: ``--threads N`` on any ``gan-init`` command, the environment
variable ``GAN_INIT_THREADS``, then ``OMP_NUM_THREADS``. The choice is put in the environment, so
the child processes of ``pipeline`` and ``sweep`` use it too, and recorded in each run's summary.
With more than one thread, OpenMP's wait policy is passive (threads sleep instead of spinning),
unless ``OMP_WAIT_POLICY`` is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

THREADS_ENV = "GAN_INIT_THREADS"
# "1" when the thread count was given (option or environment), not chosen by the policy: a sweep
# then keeps it for each run and runs as many at once as the CPUs allow at that count.
GIVEN_ENV = "GAN_INIT_THREADS_GIVEN"
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


def sweep_shares(
    cpus: int,
    parallel: int | None = None,
    threads: int | None = None,
    workers: int = DEFAULT_WORKERS,
) -> tuple[int, int]:
    """(runs at once, threads per run) for a sweep on ``cpus``. Unset, the runs at once are the
    CPUs divided by the threads per run (one when unset: small runs use a core better alone,
    benchmarks/parallel.py), and the threads per run the policy's for that many runs."""
    if parallel is not None and parallel < 1:
        raise ValueError(f"--parallel: expected a number of runs >= 1, got {parallel}")
    if parallel is None:
        parallel = max(1, cpus // (threads or 1))
    if threads is None:
        threads = choose_threads(cpus, workers, parallel)
    return parallel, threads


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


def threads_given(option: int | None, environ=os.environ) -> bool:
    """Whether the thread count comes from the user (option or environment), not the policy."""
    return option is not None or any(environ.get(n) for n in (THREADS_ENV, "OMP_NUM_THREADS"))


def set_thread_environment(threads: int, environ: MutableMapping[str, str], *, given: bool) -> None:
    """Put ``threads`` in ``environ`` for the processes started with it."""
    environ[THREADS_ENV] = str(threads)
    environ[GIVEN_ENV] = "1" if given else "0"
    environ["OMP_NUM_THREADS"] = str(threads)
    environ["MKL_NUM_THREADS"] = str(threads)
    if threads > 1:
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def apply_threads(threads: int, environ=os.environ, *, given: bool = True) -> None:
    """Use ``threads`` in this process and its children; ``given``: the user chose it."""
    set_thread_environment(threads, environ, given=given)
    if "torch" in sys.modules:  # imported already (in-process callers): set it directly
        import torch

        torch.set_num_threads(threads)


def current_threads() -> int | None:
    """The thread count this process was given by the policy (None outside ``gan-init``)."""
    value = os.environ.get(THREADS_ENV)
    return int(value) if value else None


def given_threads(environ=os.environ) -> int | None:
    """The thread count the user gave this ``gan-init`` process (None: the policy chose)."""
    value = environ.get(THREADS_ENV)
    return int(value) if value and environ.get(GIVEN_ENV) == "1" else None
