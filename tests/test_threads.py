"""The thread policy (gan_init.core.threads): what it picks, what overrides it, and that the
command line applies it to the process and its children."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gan_init.core import threads as T


@pytest.mark.parametrize(
    ("cpus", "workers", "parallel", "expected"),
    [
        (2, 1, 1, 1),  # this machine, one loader worker: measured faster than 2 threads
        (2, 0, 1, 2),
        (2, 1, 2, 1),  # two runs at once: never below one thread
        (16, 4, 1, 12),
        (16, 1, 4, 3),
        (1, 1, 1, 1),
    ],
)
def test_policy_shares_the_cpus_and_leaves_room_for_loader_workers(
    cpus, workers, parallel, expected
):
    assert T.choose_threads(cpus, workers, parallel) == expected


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="parallel >= 1"):
        T.choose_threads(2, 1, 0)


def test_option_then_environment_then_omp_then_policy():
    assert T.resolve_threads(3, environ={T.THREADS_ENV: "2", "OMP_NUM_THREADS": "5"}) == 3
    assert T.resolve_threads(None, environ={T.THREADS_ENV: "2", "OMP_NUM_THREADS": "5"}) == 2
    assert T.resolve_threads(None, environ={"OMP_NUM_THREADS": "5"}) == 5
    assert T.resolve_threads(None, environ={}, cpus=8) == 7


def test_bad_values_name_the_option_and_the_fix():
    with pytest.raises(ValueError, match=r"--threads: expected a whole number.*--threads 1"):
        T.split_threads_option(["fit", "--threads", "zero"])
    with pytest.raises(ValueError, match=r"GAN_INIT_THREADS: expected .*GAN_INIT_THREADS=1"):
        T.resolve_threads(None, environ={T.THREADS_ENV: "-2"})


def test_the_option_is_taken_out_wherever_it_stands():
    assert T.split_threads_option(["fit", "--threads", "2", "--config", "c.yaml"]) == (
        2,
        ["fit", "--config", "c.yaml"],
    )
    assert T.split_threads_option(["sweep", "f.yaml", "--threads=1"]) == (1, ["sweep", "f.yaml"])
    assert T.split_threads_option(["report", "runs"]) == (None, ["report", "runs"])


def test_apply_sets_the_children_environment_and_a_passive_wait():
    env: dict[str, str] = {}
    T.apply_threads(2, environ=env)
    assert env[T.THREADS_ENV] == env["OMP_NUM_THREADS"] == "2"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    T.apply_threads(1, environ=env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env[T.THREADS_ENV] == "1"


@pytest.mark.slow  # a fresh interpreter importing torch
def test_gan_init_runs_torch_at_the_chosen_thread_count():
    """``--threads`` reaches torch in the command's own process (set before torch loads)."""
    code = (
        "import sys; from gan_init.core import threads as T; from gan_init import cli\n"
        "cli.EXTRA_COMMANDS['probe'] = ('probe_threads', '')\n"
        "sys.exit(cli.main(['--threads', '2', 'probe']))\n"
    )
    probe = "import torch, os\ndef main(argv):\n    print(torch.get_num_threads(), os.environ['GAN_INIT_THREADS'])\n    return 0\n"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", T.THREADS_ENV)}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "probe_threads.py"), "w") as f:
            f.write(probe)
        env["PYTHONPATH"] = d + os.pathsep + env.get("PYTHONPATH", "")
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    assert out.stdout.split() == ["2", "2"]


@pytest.mark.parametrize(
    ("cpus", "parallel", "threads", "expected"),
    [
        (2, None, None, (2, 1)),  # this machine: two runs at once, one thread each
        (2, 1, None, (1, 1)),  # one at a time: the policy's 1 thread (one loader worker)
        (2, None, 2, (1, 2)),  # --threads 2: one run at a time, as before
        (16, None, 4, (4, 4)),
        (16, 4, None, (4, 3)),
        (1, None, None, (1, 1)),
    ],
)
def test_sweep_runs_at_once_and_threads_per_run(cpus, parallel, threads, expected):
    assert T.sweep_shares(cpus, parallel, threads) == expected


def test_a_given_thread_count_is_told_from_the_policy_choice():
    env: dict[str, str] = {}
    T.apply_threads(T.resolve_threads(None, environ=env, cpus=2), environ=env, given=False)
    assert T.given_threads(env) is None and env[T.THREADS_ENV] == "1"
    env = {"OMP_NUM_THREADS": "2"}
    T.apply_threads(
        T.resolve_threads(None, environ=env), environ=env, given=T.threads_given(None, env)
    )
    assert T.given_threads(env) == 2
