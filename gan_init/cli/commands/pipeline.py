"""``gan-init pipeline``: CycleGAN -> weight transfer -> progressive noise GAN -> samples, metrics.

    gan-init pipeline --dims 2 [--init_strategy cyclegan] [--grow stem] [--seed 0] [--scale cpu]
    gan-init pipeline --dims 2 --data /data/IXI --layout ixi     # on your T1/T2 NIfTI folder

Any other ``--key=value`` is passed to ``gan-init fit``: ``--trainer.*`` to both stages,
``--cyclegan.<key>`` to stage 1 only and ``--noise.<key>`` to stage 2 only, e.g.
``--trainer.devices=4 --noise.trainer.max_steps=2000``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from data_modules.base import DataError
from gan_init.cli.commands.args import Parser
from gan_init.core.files import CorruptFileError
from gan_init.core.processes import Interrupted, LockedError
from gan_init.experiment.pipeline import PipelineOptions, run_pipeline
from gan_init.transfer.strategies import INIT_STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="gan-init pipeline",
        description=__doc__,
    )
    p.add_argument("--dims", type=int, default=2, choices=[2, 3])
    p.add_argument(
        "--init_strategy",
        default="cyclegan",
        metavar="NAME",
        # Not argparse choices: the registry checks the name and suggests the nearest one.
        help="how the noise GAN's generator starts, one of the init-strategy registry: "
        + ", ".join(sorted(INIT_STRATEGIES)),
    )
    p.add_argument("--grow", default=None, help="full, stem or none (default: the noise config's)")
    p.add_argument("--seed", type=int, default=0)
    add_factor_arguments(p)
    p.add_argument(
        "--scale", default="cpu", help="cpu (minutes on a laptop) or gpu (paper-scale configs)"
    )
    add_data_arguments(p)
    p.add_argument("--runs_dir", default=None, help="default: $GAN_INIT_RUNS_DIR or runs")
    p.add_argument(
        "--wandb_group", default=None, metavar="NAME",
        help="W&B group of the noise run (gan-init sweep: the sweep's name); default noise-<d>d",
    )  # fmt: skip
    p.add_argument(
        "--name", default=None, help="run folder name (default: <strategy>-<grow>-seed<k>)"
    )
    p.add_argument("--cyclegan_config", default=None)
    p.add_argument("--noise_config", default=None)
    p.add_argument("--n_samples", type=int, default=64)
    p.add_argument("--force", action="store_true", help="run again even if the run finished")
    p.add_argument(
        "--baseline",
        default=None,
        help="also run this strategy with the same seed and options (sharing the CycleGAN "
        "stage), then write both side by side (make train-2d/3d: scratch); default: none",
    )
    return p


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data DIR`` and how to read it: both stages on the user's NIfTI folder."""
    data = p.add_argument_group(
        "your data",
        "Both stages on a folder of T1/T2 NIfTI files (NiftiFolderDataModule; image size and "
        "dimensionality from the configs; one preprocessing cache for both). Subjects are split "
        "once (split seed 0) into CycleGAN training, noise-GAN training, validation and test: "
        "the two stages train on disjoint subjects, so the transferred weights never carry the "
        "noise GAN's own training images, and both evaluate on the same held-out subjects. The "
        "run name and data.json say which folder a run used (docs/data.md).",
    )
    data.add_argument("--data", default=None, metavar="DIR", help="the folder of NIfTI files")
    data.add_argument(
        "--layout", default=None, metavar="NAME",
        help="ixi ({subject}-T1.nii.gz, default), brats (**/{subject}_t1.nii.gz) or custom",
    )  # fmt: skip
    data.add_argument(
        "--t1_pattern", default=None, metavar="GLOB",
        help="custom layout: T1 files, a glob under DIR with one {subject}, "
        "e.g. '{subject}/anat/*_T1w.nii.gz'",
    )  # fmt: skip
    data.add_argument("--t2_pattern", default=None, metavar="GLOB", help="custom layout: T2")
    data.add_argument(
        "--share_subjects", action="store_true",
        help="both stages train on the same subjects (recorded; run-name part -shared)",
    )  # fmt: skip


# The critic augmentation of a ``+aug`` arm when --augment does not name one: DiffAugment's
# translation and cutout (Zhao et al. 2020), geometric ops that suit MRI intensities.
ARM_AUGMENT = "translation,cutout"


def _subjects(text: str) -> int | None:
    """``--train_subjects``: a count, or all/none/null (the unlimited stream; sweep grids)."""
    if text.strip().lower() in ("all", "none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of subjects or 'all', got {text!r} (e.g. --train_subjects 16)"
        ) from None


def add_factor_arguments(p: argparse.ArgumentParser) -> None:
    """The experiment's factors besides strategy, growth and seed (every arm alike)."""
    p.add_argument(
        "--arm", default=None, metavar="ARM",
        help="a sweep arm: an init strategy, or STRATEGY+aug (the noise GAN's critic augments, "
        f"with --augment or {ARM_AUGMENT}); sets --init_strategy and --augment",
    )  # fmt: skip
    p.add_argument(
        "--train_subjects",
        type=_subjects,
        default=None,
        metavar="N",
        help="train each stage on the first N subjects of its training set (in the split's "
        "seeded order; held-out subjects unchanged); run-name part -nN; default (or all): all",
    )
    p.add_argument(
        "--stress",
        type=float,
        default=1.0,
        metavar="S",
        help="noise stage: multiply G's and D's learning rates by S (run-name part -stressS)",
    )
    p.add_argument(
        "--augment",
        default=None,
        metavar="POLICY",
        help="noise stage: DiffAugment policy, e.g. translation,cutout (run-name part "
        "-aug-POLICY); default: none",
    )


def split_passthrough(extra: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Sort unknown ``--key=value`` / ``--key value`` arguments by stage."""
    both: list[str] = []
    cyclegan: list[str] = []
    noise: list[str] = []
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--"):
            raise SystemExit(f"gan-init pipeline: unexpected argument {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                raise SystemExit(f"gan-init pipeline: {arg} needs a value")
            key, value = arg[2:], extra[i + 1]
            i += 2
        for prefix, target in (("cyclegan.", cyclegan), ("noise.", noise)):
            if key.startswith(prefix):
                target.append(f"--{key[len(prefix) :]}={value}")
                break
        else:
            both.append(f"--{key}={value}")
    return both, cyclegan, noise


def resolve_arm(args: argparse.Namespace) -> None:
    """``--arm STRATEGY[+aug]`` into ``init_strategy`` and ``augment``."""
    if args.arm is None:
        return
    strategy, plus, suffix = str(args.arm).partition("+")
    if plus and suffix != "aug":
        raise ValueError(f"--arm {args.arm}: expected STRATEGY or STRATEGY+aug, e.g. scratch+aug")
    args.init_strategy = strategy
    args.augment = (args.augment or ARM_AUGMENT) if plus else None


def main(argv: list[str]) -> int:
    args, extra = build_parser().parse_known_args(argv)
    both, cyclegan, noise = split_passthrough(extra)
    try:
        resolve_arm(args)
        opts = PipelineOptions(
            dims=args.dims, init_strategy=args.init_strategy, grow=args.grow, seed=args.seed,
            scale=args.scale, name=args.name,
            cyclegan_config=args.cyclegan_config, noise_config=args.noise_config,
            n_samples=args.n_samples, fit_args=both, cyclegan_args=cyclegan, noise_args=noise,
            force=args.force, train_subjects=args.train_subjects, stress=args.stress,
            augment=args.augment, data=args.data, layout=args.layout,
            t1_pattern=args.t1_pattern, t2_pattern=args.t2_pattern,
            share_subjects=args.share_subjects, wandb_group=args.wandb_group,
        )  # fmt: skip
        if args.runs_dir:
            opts.runs_dir = args.runs_dir
    except (ValueError, FileNotFoundError) as err:
        print(f"gan-init pipeline: {err}", file=sys.stderr)
        return 2
    summaries = []
    try:
        if args.baseline and args.baseline != opts.init_strategy:
            try:
                baseline = dataclasses.replace(opts, init_strategy=args.baseline, name=None)
            except ValueError as err:
                print(f"gan-init pipeline: --baseline: {err}", file=sys.stderr)
                return 2
            summaries.append(run_pipeline(baseline))
        summaries.append(run_pipeline(opts))
    except (LockedError, CorruptFileError, DataError) as err:
        print(f"gan-init pipeline: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"gan-init pipeline: {stop}; run the same command again to resume", file=sys.stderr)
        return stop.exit_code
    for summary in summaries:
        print()
        print(f"run:     {summary['run_dir']} ({summary['status']})")
        print(f"summary: {summary['run_dir']}/summary.md")
        print(f"samples: {summary.get('samples')}")
        for key, value in sorted((summary.get("metrics") or {}).items()):
            print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    if len(summaries) > 1:
        from gan_init.experiment.compare import compare_runs

        main_run = Path(summaries[-1]["run_dir"])
        out = main_run.parent / f"compare-{main_run.name}-vs-{args.baseline}"
        path = compare_runs([Path(s["run_dir"]) for s in summaries], out)
        print()
        print(f"side by side: {path} (and {path.with_suffix('.png')})")
    return 0 if all(s["status"] in ("finished", "diverged") for s in summaries) else 1
