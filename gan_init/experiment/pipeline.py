"""The whole experiment for one (dims, init strategy, growth mode, seed): CycleGAN -> transfer ->
progressive noise GAN -> samples, metrics and a summary, each run in its own folder.

Both stages run as ``gan-init fit`` subprocesses on a config resolved for the run and saved in the
run folder (``config.yaml``), so a crash in one run never takes a sweep down, and every run can be
re-created from its folder. Re-running the same pipeline resumes: a finished CycleGAN with the same
config is reused, a noise GAN with a ``last.ckpt`` resumes from it, a finished run is skipped.

Layout (``runs/`` by default)::

    runs/
      cyclegan/2d-<config hash>-seed0/     stage 1, shared by every strategy with that seed
        config.yaml  checkpoints/last.ckpt  csv/metrics.csv  wandb/  done.json
      noise_2d/cyclegan-stem-seed0/        stage 2, one folder per (noise config, run)
        config.yaml  checkpoints/  csv/metrics.csv  wandb/  transfer_summary.json
        metrics_final.json  samples/  summary.json  summary.md
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_init.core.files import read_json, read_state, write_atomic, write_json
from gan_init.core.processes import Interrupted, run_child, run_lock
from gan_init.core.registry import check_choice
from gan_init.core.threads import current_threads
from gan_init.runs import (
    CHECKPOINTS,
    CONFIG,
    CSV_DIR,
    DIVERGENCE,
    DONE,
    ENDED,
    INTERRUPTED,
    LOG,
    METRICS_CSV,
    METRICS_FINAL,
    RUNNING,
    SAMPLES,
    SUMMARY,
    SUMMARY_MD,
    SWEEP_RUN_ENV,
    RunSummary,
    find_artifact,
    last_checkpoint,
    read_artifact,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "configs"
SCALES = ("cpu", "gpu")

# W&B variables that tie a process to the sweep run that started it; stage 1 is shared between
# runs, so it must not log into whichever sweep run happened to train it.
_WANDB_RUN_VARS = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_RESUME")


@dataclass
class PipelineOptions:
    """What one pipeline run is. Extra ``gan-init fit`` arguments go to both stages (``fit_args``),
    to stage 1 only (``cyclegan_args``) or to stage 2 only (``noise_args``). Fields are named as
    the flags (``--dims``, the sweep factor ``dims``: the networks' and data's ``spatial_dims``)."""

    dims: int = 2
    init_strategy: str = "cyclegan"
    grow: str | None = None
    seed: int = 0
    scale: str = "cpu"
    runs_dir: str = field(default_factory=lambda: os.environ.get("GAN_INIT_RUNS_DIR", "runs"))
    name: str | None = None
    cyclegan_config: str | None = None
    noise_config: str | None = None
    n_samples: int = 64
    fit_args: list[str] = field(default_factory=list)
    cyclegan_args: list[str] = field(default_factory=list)
    noise_args: list[str] = field(default_factory=list)
    force: bool = False
    # Factors of the experiment protocol (issue 21); each is a run-name part when not default.
    train_subjects: int | None = None  # first N subjects of each stage's training set
    stress: float = 1.0  # noise stage: learning-rate multiplier of G and D alike
    augment: str | None = None  # noise stage: DiffAugment policy (None: no augmentation)
    # Your data (issue 25): both stages on NiftiFolderDataModule over this folder.
    data: str | None = None
    layout: str | None = None  # with data: ixi (default), brats or custom
    t1_pattern: str | None = None
    t2_pattern: str | None = None
    share_subjects: bool = False  # with data: both stages train on the same subjects
    wandb_group: str | None = None  # W&B group of the noise run (gan-init sweep: the sweep)

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"--dims {self.dims}: expected 2 or 3")
        if self.train_subjects is not None and self.train_subjects < 1:
            raise ValueError(f"--train_subjects {self.train_subjects}: expected at least 1")
        if not self.stress > 0:
            raise ValueError(f"--stress {self.stress}: expected a positive learning-rate factor")
        if self.augment in ("", "none", "None"):
            self.augment = None
        if self.data is not None:
            self._check_data()
        elif self.layout or self.t1_pattern or self.t2_pattern or self.share_subjects:
            raise ValueError(
                "--layout, --t1_pattern, --t2_pattern and --share_subjects describe the folder "
                "of --data DIR: give --data too"
            )
        check_choice("--scale", self.scale, SCALES)
        # Imported lazily: the networks and the strategy registry pull in torch.
        from gan_init.networks.progressive import GROW_MODES
        from gan_init.transfer.strategies import check_strategy

        if self.grow is not None:
            check_choice("--grow", self.grow, GROW_MODES)
        check_strategy(self.init_strategy, "--init_strategy")

    def config_path(self, stage: str) -> Path:
        given = self.cyclegan_config if stage == "cyclegan" else self.noise_config
        if given:
            path = Path(given)
        else:
            suffix = "_gpu" if self.scale == "gpu" else ""
            path = CONFIGS / f"{stage}_{self.dims}d{suffix}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{stage} config {path} does not exist")
        return path

    def _check_data(self) -> None:
        from data_modules.nifti_folder import LAYOUTS

        self.layout = check_choice("--layout", self.layout or "ixi", tuple(LAYOUTS))
        if self.layout == "custom" and not (self.t1_pattern and self.t2_pattern):
            raise ValueError(
                "--layout custom needs --t1_pattern and --t2_pattern, globs relative to --data "
                "with one {subject} placeholder, e.g. '{subject}/anat/*_T1w.nii.gz'"
            )
        root = Path(self.data).expanduser()
        if not root.is_dir():
            raise ValueError(
                f"--data {self.data}: no such folder; give the folder of your T1/T2 NIfTI files"
            )
        self.data = str(root.resolve())

    def stage_config(self, stage: str) -> dict[str, Any]:
        """The config file of ``stage``; with ``data``, its data section becomes the folder
        (``NiftiFolderDataModule``, image size and dimensionality kept from the config)."""
        config = load_yaml(self.config_path(stage))
        if self.data is not None:
            config["data"] = folder_data_section(config.get("data") or {}, self, stage)
        return config

    def name_suffix(self) -> str:
        """Run-name parts of the factors that are not at their defaults (``-n16-stress4-aug-...``);
        empty by default, so default runs keep their names."""
        parts = []
        if self.data is not None:
            parts.append(data_identity(self.stage_config("noise").get("data") or {})["name"])
        if self.share_subjects:
            parts.append("shared")
        if self.train_subjects is not None:
            parts.append(f"n{self.train_subjects}")
        if self.stress != 1.0:
            parts.append(f"stress{self.stress:g}")
        if self.augment is not None:
            parts.append("aug-" + self.augment.replace(",", "+").replace(" ", ""))
        return "".join(f"-{p}" for p in parts)

    def stage_args(self, stage: str) -> list[str]:
        """The ``gan-init fit`` arguments of ``stage`` (``cyclegan`` or ``noise``): the user's,
        then the factors'. ``train_subjects`` goes to both stages, ``stress`` and ``augment``
        to the noise stage only (the CycleGAN stage is shared by every arm)."""
        own = self.cyclegan_args if stage == "cyclegan" else self.noise_args
        args = [*self.fit_args, *own]
        if self.train_subjects is not None:
            args.append(f"--data.init_args.train_subjects={self.train_subjects}")
        if stage == "noise" and self.stress != 1.0:
            args.append(f"--model.init_args.stress={self.stress:g}")
        if stage == "noise" and self.augment is not None:
            args.append(f"--model.init_args.augment={self.augment}")
        return args

    def factors(self) -> dict[str, Any]:
        """The experiment's factors of this run beyond strategy, growth and seed."""
        return {
            "train_subjects": self.train_subjects,
            "stress": self.stress,
            "augment": self.augment,
            "data": data_identity(self.stage_config("noise").get("data") or {}),
        }


# The data module's arguments a folder keeps from a shipped config's data section.
_KEPT_DATA_ARGS = ("spatial_dims", "size", "batch_size", "num_workers", "samples_per_epoch", "seed")


def folder_data_section(
    section: dict[str, Any], opts: PipelineOptions, stage: str
) -> dict[str, Any]:
    """A config's data section turned to ``opts.data``: both stages read the same folder with
    the same split seed, roles on (disjoint CycleGAN and noise subjects) unless
    ``share_subjects``, and the same preprocessing (so one cache serves both)."""
    kept = {k: v for k, v in (section.get("init_args") or {}).items() if k in _KEPT_DATA_ARGS}
    args: dict[str, Any] = {"root": opts.data, "layout": opts.layout, **kept}
    if opts.t1_pattern:
        args["t1_pattern"] = opts.t1_pattern
    if opts.t2_pattern:
        args["t2_pattern"] = opts.t2_pattern
    args.update(mode=stage, roles=not opts.share_subjects)
    return {"class_path": "data_modules.NiftiFolderDataModule", "init_args": args}


def data_identity(section: dict[str, Any]) -> dict[str, Any]:
    """Which data a config's data section reads: ``name`` (a run-name part, and what the report
    refuses to pair across), the class, and for a folder its path, layout and patterns."""
    kind = str(section.get("class_path", "")).rsplit(".", 1)[-1]
    args = section.get("init_args") or {}
    if "root" not in args:  # built-in data: its class names it (IcbmDataModule -> icbm)
        return {"name": kind.removesuffix("DataModule").lower() or "unknown", "class": kind}
    import re

    from data_modules.nifti_folder import LAYOUTS

    layout = args.get("layout", "ixi")
    root = str(Path(args["root"]).expanduser().resolve())
    t1 = args.get("t1_pattern") or LAYOUTS.get(layout, ("", ""))[0]
    t2 = args.get("t2_pattern") or LAYOUTS.get(layout, ("", ""))[1]
    digest = hashlib.sha256(json.dumps([root, t1, t2, args.get("mask_pattern")]).encode())
    slug = re.sub(r"[^A-Za-z0-9_.]+", "_", Path(root).name).strip("_.") or "data"
    return {
        "name": f"{slug}-{digest.hexdigest()[:6]}",
        "class": kind,
        "root": root,
        "layout": layout,
        "t1_pattern": t1,
        "t2_pattern": t2,
        "shared_subjects": not args.get("roles", True),
    }


def _data_overrides(args: list[str]) -> dict[str, Any]:
    """``--data.init_args.<k>=<v>`` (or ``--data.<k>=<v>``) of child arguments, as values."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        for prefix in ("--data.init_args.", "--data."):
            if sep and key.startswith(prefix) and "." not in key[len(prefix) :]:
                out[key[len(prefix) :]] = yaml.safe_load(value)
                break
    return out


def check_folder_data(opts: PipelineOptions, stages: list[str]) -> None:
    """Too little data is one line before anything trains: build the folder's preprocessing
    cache (shared by both stages) and each stage's split here, so a missing modality, a volume
    preprocessing cannot use, fewer subjects than the roles need or than ``train_subjects`` is a
    ``DataError`` naming the file or the count, and the fix."""
    import inspect

    from data_modules.nifti_folder import NiftiFolderDataModule

    accepted = set(inspect.signature(NiftiFolderDataModule).parameters) - {"augmentation"}
    for stage in stages:
        args = dict(opts.stage_config(stage)["data"]["init_args"])
        args.update(_data_overrides(opts.stage_args(stage)))
        module = NiftiFolderDataModule(**{k: v for k, v in args.items() if k in accepted})
        module.fixes = {
            "skip_bad_subjects": "--data.init_args.skip_bad_subjects=true",
            "roles": "--share_subjects: both stages train on the same subjects",
            "train_subjects": "lower --train_subjects",
        }
        module.splits_in_use()


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping of LightningCLI sections (trainer, model, data)"
        )
    return data


def _logger_list(trainer: dict[str, Any]) -> list[dict[str, Any]]:
    loggers = trainer.get("logger")
    if isinstance(loggers, dict):
        return [loggers]
    return [lg for lg in loggers or [] if isinstance(lg, dict)]


def resolve_config(
    config: dict[str, Any],
    run_dir: Path,
    *,
    seed: int,
    run_name: str,
    group: str,
    wandb_config: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """The config of one run: everything it writes goes under ``run_dir``. ``wandb_config``: the
    experiment's factors as top-level keys of the W&B run's config (W&B's sweep views group and
    plot by them); ``tags``: the W&B run's tags."""
    config = copy.deepcopy(config)
    config["seed_everything"] = seed
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(run_dir)
    for logger in _logger_list(trainer):
        args = logger.setdefault("init_args", {})
        kind = str(logger.get("class_path", "")).rsplit(".", 1)[-1]
        if kind == "WandbLogger":
            args.update(save_dir=str(run_dir), name=run_name, group=group)
            args.setdefault("project", "gan-init")
            if wandb_config:
                args["config"] = {**(args.get("config") or {}), **wandb_config}
            if tags:
                args["tags"] = list(tags)
        elif kind == "CSVLogger":
            args.update(save_dir=str(run_dir), name=CSV_DIR, version="")
        elif "save_dir" in args:
            args["save_dir"] = str(run_dir)
    data = config.get("data") or {}
    if str(data.get("class_path", "")).endswith("NiftiFolderDataModule"):
        # Folder data: CycleGAN training, noise-GAN training and evaluation on disjoint subjects
        # unless the config says otherwise (the run records who went where, subjects.json).
        data.setdefault("init_args", {}).setdefault("roles", True)
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith(
            "ModelCheckpoint"
        ):
            args = callback.setdefault("init_args", {})
            args["dirpath"] = str(run_dir / CHECKPOINTS)
            # One last.ckpt whatever the folder's path: with the counter, a moved or copied run
            # folder resumes into last-v1.ckpt while the pipeline reads last.ckpt.
            args["enable_version_counter"] = False
    return config


def config_hash(config: dict[str, Any], extra: list[str]) -> str:
    blob = json.dumps([config, extra], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


# The lock ``gan-init fit`` holds beside its checkpoint folder
# (gan_init.cli.run_folder.fit_in_run_folder: ``.<folder name>.lock``).
TRAINER_LOCK = ".checkpoints.lock"


def _fit(
    config_file: Path, args: list[str], run_dir: Path, *, env: dict[str, str], log: Path
) -> int:
    """``gan-init fit`` in ``run_dir``, resuming from its ``last.ckpt``; dies with this process
    (``gan_init.core.processes``). Raises ``Interrupted`` when a signal stopped it."""
    # A trainer of an earlier, killed pipeline may still be saving its last checkpoint: wait for
    # it, so the resume below starts from that checkpoint.
    with run_lock(run_dir, "gan-init fit", wait=True, name=TRAINER_LOCK):
        pass
    cmd = [sys.executable, "-m", "gan_init", "fit", "--config", str(config_file), *args]
    last = last_checkpoint(run_dir)
    if last.is_file():
        cmd += ["--ckpt_path", str(last)]  # resume: Lightning restores weights, loops, callbacks
    print(f"$ {shlex.join(cmd)}", flush=True)
    with open(log, "ab") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
    return run_child(cmd, env=env, log=log)


def _env(run_dir: Path, *, shared_stage: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline" if not env.get("WANDB_API_KEY") else "online")
    env["WANDB_DIR"] = str(run_dir)
    if shared_stage:
        for var in _WANDB_RUN_VARS:
            env.pop(var, None)
    return env


def run_cyclegan(opts: PipelineOptions) -> Path:
    """Train stage 1 for ``opts.seed``, or reuse a finished one with the same config. Returns the
    checkpoint the noise GAN starts from."""
    base = opts.stage_config("cyclegan")
    extra = opts.stage_args("cyclegan")
    key = config_hash(base, extra)
    run_dir = Path(opts.runs_dir) / "cyclegan" / f"{opts.dims}d-{key}-seed{opts.seed}"
    # One trainer per stage-1 folder: a second pipeline (say make train-2d beside make sweep-2d)
    # waits for the first to finish, then reuses its checkpoint.
    with run_lock(run_dir, "CycleGAN stage", wait=True):
        return _run_cyclegan_locked(opts, base, extra, key, run_dir)


def _run_cyclegan_locked(
    opts: PipelineOptions, base: dict[str, Any], extra: list[str], key: str, run_dir: Path
) -> Path:
    done = read_state(
        run_dir / DONE,
        check=lambda d: None if "checkpoint" in d else "no 'checkpoint' key",
        recover="Run the same command again: the stage resumes from checkpoints/last.ckpt",
    )
    if done and Path(done["checkpoint"]).is_file():
        print(f"CycleGAN stage: reusing {done['checkpoint']}")
        return Path(done["checkpoint"])
    factors = opts.factors()
    config = resolve_config(
        base, run_dir, seed=opts.seed, run_name=run_dir.name, group=f"cyclegan-{opts.dims}d",
        wandb_config={
            "stage": "cyclegan", "dims": opts.dims, "seed": opts.seed,
            "data": factors["data"]["name"], "train_subjects": opts.train_subjects,
        },
    )  # fmt: skip
    config_file = run_dir / CONFIG
    write_atomic(config_file, yaml.safe_dump(config, sort_keys=False))
    start = time.time()
    code = _fit(
        config_file, extra, run_dir, env=_env(run_dir, shared_stage=True), log=run_dir / LOG
    )
    last = last_checkpoint(run_dir)
    if code != 0 or not last.is_file():
        raise RuntimeError(f"CycleGAN stage failed (exit code {code}); see {run_dir / LOG}")
    checkpoint, selected = selected_checkpoint(last)
    print(f"CycleGAN stage: the noise GAN starts from {checkpoint} ({selected['rule']})")
    write_json(
        run_dir / DONE,
        {
            "checkpoint": str(checkpoint),
            "selected": selected,
            "seconds": round(time.time() - start, 1),
            "threads": current_threads(),  # the stage's CPU threads (a reused stage keeps its own)
            "config_hash": key,
            "val": last_values(run_dir, "val/", epoch=selected["epoch"]),
            "val_final": last_values(run_dir, "val/"),
        },
    )
    return checkpoint


def selected_checkpoint(last: Path) -> tuple[Path, dict[str, Any]]:
    """The CycleGAN weights a noise GAN starts from: the epoch its ``ModelCheckpoint`` kept as
    best (every shipped config monitors ``val/psnr_t2_to_t1``: model selection on validation
    data), else the final weights in ``last.ckpt``. With what was selected, by which rule."""
    import torch

    state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    for name, cb in (state.get("callbacks") or {}).items():
        best_path = cb.get("best_model_path") if name.startswith("ModelCheckpoint") else None
        if not best_path or not cb.get("monitor"):
            continue
        best = last.parent / Path(best_path).name  # the folder may have moved since
        if best.is_file() and best != last:
            chosen = torch.load(best, map_location="cpu", weights_only=True, mmap=True)
            score = cb.get("best_model_score")
            return best, {
                "rule": f"best {cb['monitor']} on validation data",
                "epoch": int(chosen["epoch"]),
                "global_step": int(chosen["global_step"]),
                "score": None if score is None else float(score),
            }
    return last, {
        "rule": "final weights",
        "epoch": int(state["epoch"]),
        "global_step": int(state["global_step"]),
        "score": None,
    }


def last_values(run_dir: Path, prefix: str, epoch: int | None = None) -> dict[str, float]:
    """The last logged value of every ``prefix*`` metric in a run's CSV files (all attempts);
    with ``epoch``, of the values logged in that epoch only."""
    import csv

    from gan_init.core.files import csv_attempts

    values: dict[str, float] = {}
    for path in csv_attempts(run_dir):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if epoch is not None and row.get("epoch") in (None, ""):
                    continue
                if epoch is not None and int(float(row["epoch"])) != epoch:
                    continue
                for key, value in row.items():
                    if key and key.startswith(prefix) and value not in (None, ""):
                        values[key] = float(value)
    return values


def cyclegan_record(checkpoint: Path | None) -> dict[str, Any] | None:
    """What a noise run should say about the CycleGAN stage it started from: its checkpoint and
    validation scores (PSNR/SSIM/MAE of both translations and the identity baseline)."""
    if checkpoint is None:
        return None
    run_dir = checkpoint.parent.parent
    done = read_json(run_dir / DONE) or {}
    return {
        "checkpoint": str(checkpoint),
        "val": done.get("val") or last_values(run_dir, "val/"),
        "threads": done.get("threads"),
    }


def noise_run_dir(opts: PipelineOptions, grow: str) -> Path:
    """``<runs>/<noise config>/<strategy>-<grow>-seed<k>``: runs of different configs (a sweep's
    short budget, the full CPU config, the GPU config) never share a folder."""
    name = opts.name or f"{opts.init_strategy}-{grow}-seed{opts.seed}{opts.name_suffix()}"
    return Path(opts.runs_dir) / opts.config_path("noise").stem / name


def _grow_of(config: dict[str, Any]) -> str:
    generator = config.get("model", {}).get("init_args", {}).get("generator", {})
    return generator.get("init_args", {}).get("grow", "full")


def _check_summary(summary: dict[str, Any]) -> str | None:
    return None if isinstance(summary.get("status"), str) else "no 'status' key"


def run_pipeline(opts: PipelineOptions) -> dict[str, Any]:
    """Run (or resume, or skip when finished) one whole experiment; returns its summary.

    Raises ``LockedError`` when another process works in the run folder, ``Interrupted`` when a
    signal stopped it (the summary says ``interrupted``; the same command resumes it)."""
    noise_base = opts.stage_config("noise")
    grow = opts.grow or _grow_of(noise_base)
    if opts.data is not None:
        from gan_init.transfer.strategies import INIT_STRATEGIES

        uses_source = INIT_STRATEGIES.meta(opts.init_strategy)["uses_source"]
        check_folder_data(opts, ["cyclegan", "noise"] if uses_source else ["noise"])
    run_dir = noise_run_dir(opts, grow)
    with run_lock(run_dir, "gan-init pipeline", wait=False):
        return _run_pipeline_locked(opts, noise_base, grow, run_dir)


def _run_pipeline_locked(
    opts: PipelineOptions, noise_base: dict[str, Any], grow: str, run_dir: Path
) -> dict[str, Any]:
    summary_file = run_dir / SUMMARY
    previous = read_state(
        summary_file,
        check=_check_summary,
        recover="Run the same command again: the run resumes from checkpoints/last.ckpt",
    )
    if previous and previous.get("status") in ENDED and not opts.force:
        print(f"{run_dir}: already {previous['status']}; skipping (--force to run again)")
        return previous

    start = time.time()
    from gan_init.transfer.strategies import INIT_STRATEGIES

    strategy = INIT_STRATEGIES.meta(opts.init_strategy)
    source = run_cyclegan(opts) if strategy["uses_source"] else None

    factors = opts.factors()
    config = resolve_config(
        noise_base, run_dir, seed=opts.seed, run_name=f"{opts.dims}d/{run_dir.name}",
        group=opts.wandb_group or f"noise-{opts.dims}d",
        wandb_config={
            "stage": "noise", "dims": opts.dims, "init_strategy": opts.init_strategy,
            "grow": grow, "seed": opts.seed, **factors, "data": factors["data"]["name"],
        },
        tags=[opts.init_strategy, f"grow-{grow}", f"{opts.dims}d"],
    )  # fmt: skip
    generator = config["model"]["init_args"]["generator"].setdefault("init_args", {})
    generator["grow"] = grow
    if strategy["patch_stem_critic"]:
        # D_T1's stem goes into the critic's top block, which must take its shape. The shipped
        # main configs leave it off (measured: a better critic at the top level).
        disc = config["model"]["init_args"]["discriminator"].setdefault("init_args", {})
        if not disc.get("patch_stem"):
            print("cyclegan_g_and_d: the discriminator's top block takes the PatchGAN stem shape")
            disc["patch_stem"] = True
    config_file = run_dir / CONFIG
    write_atomic(config_file, yaml.safe_dump(config, sort_keys=False))
    args = [*opts.stage_args("noise"), "--init_strategy", opts.init_strategy]
    if source is not None:
        args += ["--source", str(source)]
    identity = _identity(opts, grow, source)
    RunSummary.from_dict({"status": RUNNING, "run_dir": str(run_dir), **identity}).write()
    env = _env(run_dir, shared_stage=False)
    log = run_dir / LOG
    try:
        code = _fit(config_file, args, run_dir, env=env, log=log)
        outcome = _outcome(opts, run_dir, code, log=log)
    except Interrupted as stop:
        interrupted = {"status": INTERRUPTED, "signal": stop.signum, "run_dir": str(run_dir)}
        RunSummary.from_dict({**interrupted, **identity}).write()
        raise
    summary = {
        "exit_code": code,
        "run_dir": str(run_dir),
        **identity,
        "seconds": round(time.time() - start, 1),
        "threads": current_threads(),  # CPU threads per process (gan_init.core.threads)
        **outcome,
        "metrics_csv": str(find_artifact(run_dir, METRICS_CSV) or ""),
        "cyclegan": cyclegan_record(source),
    }
    summary = RunSummary.from_dict(summary).to_dict()
    write_json(summary_file, summary)
    write_atomic(run_dir / SUMMARY_MD, summary_markdown(summary))
    return summary


def _outcome(opts: PipelineOptions, run_dir: Path, code: int, *, log: Path) -> dict[str, Any]:
    """Status, checkpoint, samples and final metrics of a trained run (summary keys)."""
    divergence = read_artifact(run_dir, DIVERGENCE)
    checkpoint = last_checkpoint(run_dir)
    status = "diverged" if divergence else ("finished" if code == 0 else "failed")
    failure = None if code == 0 or divergence else f"gan-init fit exited with code {code}"
    samples = None
    if status != "failed" and checkpoint.is_file():
        samples = run_dir / SAMPLES
        problem = _sample(checkpoint, opts.n_samples, samples, log=log)
        if problem:
            status, samples = "failed", None
            failure = f"gan-init sample failed ({problem}); see {log}"
    elif status != "failed":
        status, failure = "failed", f"no checkpoint {checkpoint} after training; see {log}"
    final = read_artifact(run_dir, METRICS_FINAL) or {}
    metrics = {f"eval/{k}": v for k, v in (final.get("metrics") or {}).items()}
    # The evaluation's own cost (EvaluationCallback): time/eval_seconds, fit_seconds, eval_share.
    metrics |= {f"time/{k}": v for k, v in (final.get("time") or {}).items()}
    if "images_shown" in final:
        metrics["progress/images_shown"] = final["images_shown"]
    return {
        "status": status,
        "failure": failure,
        "samples": str(samples) if samples else None,
        "metrics": metrics,
        "divergence": divergence,
        **_checkpoint_record(checkpoint, final),
    }


def _sample(checkpoint: Path, n: int, out: Path, *, log: Path) -> str | None:
    """``gan-init sample --checkpoint CHECKPOINT --n N --out OUT --seed 0``, in this process (the
    pipeline has torch loaded already; a child process would pay the interpreter and imports
    again, about 5 s a run). Same function, seed and threads, so the same files. Returns None, or
    the error's one line (its traceback goes to ``log``)."""
    import traceback

    from gan_init.cli.commands.sample import write_samples

    cmd = ["gan-init", "sample", "--checkpoint", str(checkpoint), "--n", str(n), "--out", str(out)]
    with open(log, "a") as text:
        text.write(f"$ {shlex.join([*cmd, '--seed', '0'])}  (in the pipeline's process)\n")
        try:
            written = write_samples(str(checkpoint), n, out, seed=0)
        except Exception as error:  # noqa: BLE001 - recorded as the run's failure, not raised
            traceback.print_exc(file=text)
            return f"{type(error).__name__}: {error}".splitlines()[0]
        text.write(f"wrote {len(written)} file(s) to {out} (grid: {written[-1]})\n")
    return None


def _checkpoint_record(checkpoint: Path, final: dict[str, Any]) -> dict[str, Any]:
    """Which checkpoint the samples and final metrics came from: its path and training step,
    and whether the final metrics were computed at that same step."""
    if not checkpoint.is_file():
        return {"checkpoint": None, "checkpoint_global_step": None, "metrics_global_step": None}
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    step = int(state.get("global_step", -1))
    record = {
        "checkpoint": str(checkpoint),
        "checkpoint_global_step": step,
        "metrics_global_step": final.get("global_step"),
    }
    if final and final.get("global_step") != step:
        print(
            f"warning: the final metrics were computed at step {final.get('global_step')}, "
            f"but {checkpoint} is at step {step}"
        )
    return record


def _identity(opts: PipelineOptions, grow: str, source: Path | None) -> dict[str, Any]:
    return {
        "dims": opts.dims,
        "init_strategy": opts.init_strategy,
        "grow": grow,
        "seed": opts.seed,
        "scale": opts.scale,
        "noise_config": opts.config_path("noise").stem,
        **opts.factors(),
        "source": str(source) if source else None,
        "options": asdict(opts),
        "sweep_run": os.environ.get(SWEEP_RUN_ENV),  # set by `gan-init sweep`
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# {summary['dims']}D noise GAN: {summary['init_strategy']}, grow {summary['grow']}, "
        f"seed {summary['seed']}",
        "",
        f"- status: **{summary['status']}** (exit code {summary['exit_code']}), "
        f"{summary['seconds'] / 60:.1f} min",
        f"- CycleGAN source: {summary['source'] or 'none (scratch)'}",
        f"- checkpoint: {summary['checkpoint']} (step {summary.get('checkpoint_global_step')})",
        f"- samples: {summary['samples']}",
    ]
    if summary.get("failure"):
        lines.append(f"- failure: {summary['failure']}")
    if summary.get("divergence"):
        lines.append(f"- divergence: {summary['divergence']}")
    cyclegan = summary.get("cyclegan") or {}
    if cyclegan.get("val"):
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(cyclegan["val"].items()))
        lines.append(f"- CycleGAN stage validation: {scores}")
    if summary.get("metrics"):
        lines += ["", "| metric | value |", "| --- | --- |"]
        for key, value in sorted(summary["metrics"].items()):
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"
