"""The experiment is a controlled comparison: what the shipped configs and sweeps hold fixed.

Arms of a sweep may differ only in what the sweep names (init strategy, growth mode, seed). These
tests read the shipped files, so a config edit that breaks the protocol fails here:
- the CycleGAN of every config pair and sweep is trained at the noise GAN's image size;
- every sweep compares all three growth modes, and `stem` grows over at least two levels;
- every noise config evaluates and watches stability, and each sweep's metric is one it logs
  (checked statically, and end to end on each sweep's first combination, shrunk to CPU size);
- the data stream is not pinned by the configs (it follows the run's seed);
- every arm of a sweep trains against the same critic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gan_init.experiment.pipeline import CONFIGS, load_yaml
from gan_init.experiment.sweep import expand_command, load_sweep
from gan_init.networks.backbones import BackboneSpec
from gan_init.networks.progressive import NoiseGenerator
from gan_init.runs import SWEEP_RUN_ENV, sweep_run_summary
from tests.tiny_configs import shrink

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
NOISE_CONFIGS = sorted(CONFIGS.glob("noise_*.yaml"))


def _callbacks(config: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        cb
        for cb in config["trainer"].get("callbacks") or []
        if cb["class_path"].rsplit(".", 1)[-1] == kind
    ]


def _sweep_value(sweep: dict[str, Any], name: str) -> Any:
    spec = sweep["parameters"].get(name, {})
    return spec.get("value", (spec.get("values") or [None])[0])


def sweep_configs(sweep: dict[str, Any]) -> tuple[Path, Path]:
    """The (CycleGAN, noise) configs a sweep's runs use, as `gan-init pipeline` picks them."""
    dims = _sweep_value(sweep, "dims")
    suffix = "_gpu" if _sweep_value(sweep, "scale") == "gpu" else ""
    paths = []
    for stage in ("cyclegan", "noise"):
        given = _sweep_value(sweep, f"{stage}_config")
        paths.append(REPO / given if given else CONFIGS / f"{stage}_{dims}d{suffix}.yaml")
    return paths[0], paths[1]


def config_pairs() -> list[tuple[Path, Path]]:
    pairs = {sweep_configs(load_sweep(p)) for p in SWEEPS}
    for dims in (2, 3):
        for suffix in ("", "_gpu"):
            pairs.add(
                (
                    CONFIGS / f"cyclegan_{dims}d{suffix}.yaml",
                    CONFIGS / f"noise_{dims}d{suffix}.yaml",
                )
            )
    return sorted(pairs)


def _generator_args(noise: dict[str, Any]) -> dict[str, Any]:
    return noise["model"]["init_args"]["generator"]["init_args"]


@pytest.mark.parametrize("pair", config_pairs(), ids=lambda p: f"{p[0].stem}->{p[1].stem}")
def test_cyclegan_is_trained_at_the_noise_gans_size(pair):
    cyclegan, noise = (load_yaml(p) for p in pair)
    cyc_size = cyclegan["data"]["init_args"]["size"]
    noise_size = _generator_args(noise)["image_size"]
    assert cyc_size == noise_size, (
        f"{pair[0].name} trains at {cyc_size}, {pair[1].name} at {noise_size}"
    )
    assert noise["data"]["init_args"]["size"] == noise_size
    cyc_backbone = cyclegan["model"]["init_args"]["generator"]["init_args"]["backbone"]
    assert cyc_backbone == _generator_args(noise)["backbone"], f"{pair}: backbones differ"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweeps_compare_every_growth_mode_and_stem_grows(path):
    sweep = load_sweep(path)
    spec = sweep["parameters"]["grow"]
    grows = set(spec.get("values") or [spec.get("value")])
    if path.name.startswith("map_"):  # the map's cells: `full` would be identical by construction
        assert grows <= {"stem", "none"}, f"{path.name}: {grows}"
    else:
        assert grows == {"full", "stem", "none"}
    noise = load_yaml(sweep_configs(sweep)[1])
    args = dict(_generator_args(noise))
    args["backbone"] = BackboneSpec.from_dict(args["backbone"], source=path.name)
    levels = {grow: NoiseGenerator(**{**args, "grow": grow}).n_levels for grow in ("stem", "full")}
    assert levels["stem"] >= 2, f"{path.name}: `stem` growth has one level (it would equal `none`)"
    assert levels["full"] > levels["stem"]


@pytest.mark.parametrize("path", NOISE_CONFIGS, ids=lambda p: p.name)
def test_noise_configs_evaluate_and_watch_stability(path):
    config = load_yaml(path)
    assert len(_callbacks(config, "EvaluationCallback")) == 1, f"{path.name} does not evaluate"
    assert len(_callbacks(config, "StabilityCallback")) == 1, f"{path.name} has no stability watch"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_metric_is_one_the_evaluation_logs(path):
    sweep = load_sweep(path)
    metric = sweep["metric"]["name"]
    evaluation = _callbacks(load_yaml(sweep_configs(sweep)[1]), "EvaluationCallback")[0]
    args = evaluation["init_args"]
    logged = {
        *args.get("metrics", []),
        *args.get("costly_metrics", []),
        *args.get("final_metrics", []),
    }
    base = re.sub(r"^(full|at\d+)/", "", metric.removeprefix("eval/"))  # one resolution's value
    assert metric.startswith("eval/") and base.split("_")[0] in logged


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_configs_do_not_pin_the_data_stream(path):
    """The data seed follows the run's seed (seed_everything), so each seed draws its own stream."""
    assert "seed" not in load_yaml(path)["data"]["init_args"]


def test_pipeline_gives_folder_data_disjoint_subject_roles(tmp_path):
    from gan_init.experiment.pipeline import resolve_config

    config = load_yaml(CONFIGS / "noise_2d.yaml")
    config["data"] = {
        "class_path": "data_modules.NiftiFolderDataModule",
        "init_args": {"root": "x"},
    }
    resolved = resolve_config(config, tmp_path, seed=1, run_name="r", group="g")
    assert resolved["data"]["init_args"]["roles"] is True
    config["data"]["init_args"]["roles"] = False  # the user's choice stands
    assert (
        resolve_config(config, tmp_path, seed=1, run_name="r", group="g")["data"]["init_args"][
            "roles"
        ]
        is False
    )


# ---- each sweep's first combination, end to end, at CPU size ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweeps_first_combination_logs_its_metric(path, tmp_path):
    sweep = load_sweep(path)
    params = {name: _sweep_value(sweep, name) for name in sweep["parameters"]}
    size = 16
    shrunk = {}
    for stage, config in zip(("cyclegan", "noise"), sweep_configs(sweep)):
        shrunk[stage] = tmp_path / config.name
        shrunk[stage].write_text(yaml.safe_dump(shrink(load_yaml(config), size)))
    params.update(cyclegan_config=str(shrunk["cyclegan"]), noise_config=str(shrunk["noise"]))
    for key in ("init_strategy", "arm"):  # the CycleGAN stage runs for any arm but scratch
        if params.get(key) == "scratch":
            params[key] = "cyclegan"
    env = {**os.environ, SWEEP_RUN_ENV: "protocol/first", "WANDB_MODE": "disabled"}
    cmd = [*expand_command(sweep, params), f"--runs_dir={tmp_path / 'runs'}", "--n_samples=2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = sweep_run_summary(tmp_path / "runs", "protocol/first").metrics
    metric = sweep["metric"]["name"]
    assert isinstance(metrics.get(metric), float), f"{path.name}: {metric} not in {sorted(metrics)}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_make_sweep_targets_run_every_map_file():
    """`make sweep-2d` and `make sweep-3d` run every cell's file of the map, each in its own
    target (a cell file left out of the Makefile would never be run by the documented command)."""
    for dims in (2, 3):
        out = subprocess.run(
            ["make", "-n", f"sweep-{dims}d"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        named = set(re.findall(r"experiments/sweeps/(map_\dd_\w+\.yaml)", out))
        files = {p.name for p in (REPO / "experiments" / "sweeps").glob(f"map_{dims}d_*.yaml")}
        assert files and named == files


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_arm_of_a_sweep_trains_against_the_same_critic(path):
    """`gan-init pipeline` turns the critic's PatchGAN stem on for a strategy that copies D_T1's
    stem in (cyclegan_g_and_d). A sweep with such an arm must have it on for every arm, or that
    arm alone would train against another critic; a sweep without one may leave it off (the 3D
    map's config does: its pilot found the critic's own top block better)."""
    from gan_init.transfer.strategies import INIT_STRATEGIES

    sweep = load_sweep(path)
    params = sweep["parameters"]
    spec = params.get("arm") or params.get("init_strategy") or {}
    arms = spec.get("values") or [spec.get("value", "cyclegan")]
    strategies = {str(a).split("+")[0] for a in arms}
    _, noise = sweep_configs(sweep)
    disc = yaml.safe_load(noise.read_text())["model"]["init_args"]["discriminator"]["init_args"]
    override = "--noise.model.init_args.discriminator.init_args.patch_stem=true"
    on = bool(disc.get("patch_stem")) or override in sweep.get("command", [])
    if any(INIT_STRATEGIES.meta(s)["patch_stem_critic"] for s in strategies):
        assert on, f"{path.name}: {sorted(strategies)} with the critic's patch stem off"
