"""The report, from synthetic runs whose answer is known."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_init.experiment.report import (
    collect_runs,
    images_to_reach,
    mean_ci,
    read_curves,
    write_report,
)


def fake_run(
    root: Path,
    dims: int,
    strategy: str,
    grow: str,
    seed: int,
    speed: float,
    status="finished",
    jitter: float = 0.0,
    floor: float | None = None,
    diag: bool = False,
):
    """SWD falls as 100 / (1 + speed * images / 1000); sparse CSV rows like Lightning's CSVLogger.
    The noise is shared by the runs of a seed (paired), plus ``jitter`` (a per-run offset of that
    spread). ``diag`` adds transfer diagnostics for two parts, ``floor`` logs eval/swd_floor."""
    run = root / f"{dims}d" / f"{strategy}-{grow}-seed{seed}"
    (run / "csv").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    offset = np.random.default_rng([seed, len(strategy), dims]).normal(0, jitter) if jitter else 0
    parts = ("trunk", "head") if diag else ()
    diag_keys = [f"diag/{k}/{p}" for k in ("weight_dist", "cka", "update_ratio") for p in parts]
    rows = []
    for step in range(0, 101, 10):
        images = step * 16
        rows.append({"step": step, "progress/images_shown": images, "train/loss_d": 1.0})
        swd = 100 / (1 + speed * images / 1000) + rng.normal(0, 0.5) + offset
        rows.append({"step": step, "progress/images_shown": images, "eval/swd": swd})
        if diag:
            drift = {"weight_dist": images / 1600 / speed, "cka": 1 - images / 3200 / speed}
            drift["update_ratio"] = 1e-3 / (1 + step)
            rows.append({"step": step, **{k: drift[k.split("/")[1]] for k in diag_keys}})
    fields = ["step", "progress/images_shown", "train/loss_d", "eval/swd", *diag_keys]
    with open(run / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
    samples = run / "samples"
    samples.mkdir()
    Image.fromarray(np.full((8, 8), 127, np.uint8)).save(samples / "grid.png")
    metrics = {"eval/swd": rows[-1 - bool(diag)]["eval/swd"]}
    if floor is not None:
        metrics["eval/swd_floor"] = floor
    summary = {
        "status": status, "dims": dims, "init_strategy": strategy, "grow": grow, "seed": seed,
        "metrics": metrics, "samples": str(samples), "run_dir": str(run),
    }  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def runs(tmp_path):
    for seed in range(3):
        for dims in (2, 3):
            fake_run(tmp_path, dims, "scratch", "stem", seed, speed=1.0)
            fake_run(tmp_path, dims, "cyclegan", "stem", seed, speed=4.0)
        fake_run(
            tmp_path,
            2,
            "cyclegan_untrained",
            "stem",
            seed,
            1.0,
            "diverged" if seed == 0 else "finished",
        )
    return tmp_path


def test_curves_take_images_shown_as_x(runs):
    xs, ys = read_curves(runs / "2d" / "scratch-stem-seed0" / "csv" / "metrics.csv")["eval/swd"]
    assert xs[0] == 0 and xs[-1] == 1600 and len(xs) == len(ys) == 11
    assert ys[0] > 90 and ys[-1] < 50


def primary_row(text: str, section: str, strategy: str, grow: str = "stem") -> list[str]:
    """The cells of a strategy's row in a section's primary-endpoint table."""
    body = text[text.index(section + "\n") :]
    body = body[body.index("### Primary endpoint") :]
    row = next(line for line in body.splitlines() if line.startswith(f"| {strategy} | {grow} |"))
    return [c.strip() for c in row.split("|")[1:-1]]


def test_report_finds_the_faster_strategy(runs):
    assert len(collect_runs(runs)) == 15
    report = write_report(runs)
    text = report.read_text()
    assert "## 2D and 3D side by side" in text and "## 2D" in text and "## 3D" in text
    cells = primary_row(text, "## 2D, `noise_2d`", "cyclegan")
    assert cells[2] == "3"  # pairs
    assert float(cells[5]) < 0.01 and cells[8] == "**better**"  # Holm p of a 4x faster start
    untrained = primary_row(text, "## 2D, `noise_2d`", "cyclegan_untrained")
    assert untrained[2] == "2" and untrained[11] == "seed 0: cyclegan_untrained diverged"
    divergences = text[text.index("### Secondary: divergences") :]
    assert "| cyclegan_untrained (stem) | 3 | 1 | 0 |" in divergences
    for png in report.parent.glob("*.png"):
        with Image.open(png) as im:
            im.verify()
    assert (report.parent / "noise_2d_eval_swd.png").is_file()
    assert (report.parent / "noise_2d_samples_cyclegan_stem.png").is_file()
    assert (report.parent / "paired_difference.png").is_file()


# Five seeds; scratch reaches the same quality at speed 1. Margin: 10% of scratch's SWD-AUC (~6).
ARMS = {
    "cyclegan": dict(speed=4.0),  # better
    "cyclegan_frozen": dict(speed=0.5),  # worse
    "cyclegan_untrained": dict(speed=1.0, jitter=0.3),  # equivalent: a tiny per-run offset
    "cyclegan_t1_to_t2": dict(speed=1.0, jitter=30.0),  # inconclusive: a huge per-run offset
}
EXPECTED = {
    "cyclegan": "better",
    "cyclegan_frozen": "worse",
    "cyclegan_untrained": "equivalent",
    "cyclegan_t1_to_t2": "inconclusive",
    "cyclegan_g_and_d": "n/a",
}


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory):
    """A 2D sweep (recorded in a sweep state file with its endpoints, floor and diagnostics
    logged) and 3D runs outside any sweep (default endpoints, no floor)."""
    tmp_path = tmp_path_factory.mktemp("sweep_runs")
    records = []
    for dims in (2, 3):
        extra = dict(floor=1.5, diag=True) if dims == 2 else {}
        for seed in range(5):
            runs_here = [fake_run(tmp_path, dims, "scratch", "stem", seed, 1.0, **extra)]
            for strategy, arm in ARMS.items():
                runs_here.append(fake_run(tmp_path, dims, strategy, "stem", seed, **arm, **extra))
            if dims == 2:
                records += [
                    {"name": r.name, "run_dir": str(r), "state": "finished"} for r in runs_here
                ]
        fake_run(tmp_path, dims, "cyclegan_g_and_d", "stem", 0, 2.0, **extra)  # one pair only
    # Timestamps of two runs: 10 + 20 minutes of runs over a 45-minute wall time.
    records[0] |= {"started": "2026-01-01T10:00:00", "ended": "2026-01-01T10:10:00"}
    records[1] |= {"started": "2026-01-01T10:25:00", "ended": "2026-01-01T10:45:00"}
    endpoints = {"primary": "auc(eval/swd)", "secondary": ["reach(eval/swd)", "diverged"]}
    endpoints |= {"margin": "10%", "alpha": 0.05, "power": 0.8}
    state = {"runs": records, "sweep_file": "sweeps/mine.yaml", "endpoints": endpoints}
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "mine.json").write_text(json.dumps(state))
    report = write_report(tmp_path)
    return report, report.read_text()


def test_report_gives_each_strategy_its_verdict_2d_and_3d(sweep_runs):
    _, text = sweep_runs
    for section in ("## 2D, `noise_2d`", "## 3D, `noise_3d`"):
        verdicts = {s: primary_row(text, section, s)[8].strip("*") for s in EXPECTED}
        assert verdicts == EXPECTED
    # the one-pair strategy says why, the others state the smallest detectable difference
    assert (
        primary_row(text, "## 2D, `noise_2d`", "cyclegan_g_and_d")[9] == "1 complete pair (needs 2)"
    )
    assert float(primary_row(text, "## 2D, `noise_2d`", "cyclegan_t1_to_t2")[10]) > 6


def test_report_states_the_plan_before_any_number_and_the_floor(sweep_runs):
    _, text = sweep_runs
    plan = text.index("## Analysis plan")
    assert plan < text.index("| ") and plan < text.index("![")
    assert "pre-specified in `sweeps/mine.yaml`" in text
    assert "not pre-specified (no sweep recorded these runs)" in text  # the 3D runs
    assert "Verdict rule:" in text[: text.index("## Paired difference")]
    two_d, three_d = text.split("## 3D, `noise_3d`")
    assert "Noise floor (`eval/swd_floor`" in two_d and "): 1.5 (26 runs" in two_d
    assert "not measured" in three_d and "not measured" not in two_d
    assert "final KID (`final(eval/kid)`): not logged by these runs" in three_d
    overview = text[text.index("## Paired difference") : text.index("## 2D and 3D side by side")]
    assert "| cyclegan | **better**" in overview


def test_report_states_what_each_sweep_cost(sweep_runs):
    _, text = sweep_runs
    table = text[text.index("## Sweeps run") : text.index("## Paired difference")]
    n = 5 * (1 + len(ARMS))
    assert f"| `sweeps/mine.yaml` | {n} finished | 30 min | 45 min |" in table


def test_report_plots_the_transfer_diagnostics(sweep_runs):
    from gan_init.experiment.report import DIAGNOSTICS

    report, text = sweep_runs
    for kind in DIAGNOSTICS:
        assert (report.parent / f"noise_2d_diag_{kind}.png").is_file()
        assert not (report.parent / f"noise_3d_diag_{kind}.png").exists()  # none logged
        assert f"![{kind}](noise_2d_diag_{kind}.png)" in text
    curves = collect_runs(report.parent.parent)[0].curves
    assert {"diag/cka/trunk", "diag/weight_dist/head"} <= set(curves)


def test_images_to_reach_and_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(
        2.4841, rel=1e-3
    )  # t(0.975, 2) * 1 / sqrt(3)

    class R:
        curves = {"eval/swd": (np.array([0, 10, 20]), np.array([5.0, 3.0, 1.0]))}

    assert images_to_reach(R, "eval/swd", 3.0) == 10
    assert images_to_reach(R, "eval/swd", 0.5) is None


def test_empty_runs_dir_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="make train-2d"):
        write_report(tmp_path)


def test_runs_of_different_configs_are_not_pooled(runs):
    run = fake_run(runs, 2, "scratch", "stem", 7, speed=1.0)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "noise_config": "noise_2d_sweep"}))
    text = write_report(runs).read_text()
    assert "## 2D, `noise_2d_sweep`" in text and "## 2D, `noise_2d`" in text
    header = next(line for line in text.splitlines() if line.startswith("| strategy (grow) | 2D"))
    assert (
        "2D `noise_2d`" in header and "2D `noise_2d_sweep`" in header and "3D `noise_3d`" in header
    )


def _write_csv(path: Path, points: list[tuple[int, float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "progress/images_shown", "eval/swd"])
        writer.writeheader()
        for images, swd in points:
            writer.writerow({"step": images, "progress/images_shown": images, "eval/swd": swd})


def test_a_resumed_run_keeps_its_curve_from_before_the_resume(tmp_path):
    """Lightning's CSVLogger deletes metrics.csv when a run resumes into its folder: the CLI sets
    it aside first, and the report joins the attempts (the later from where it starts)."""
    from gan_init.core.files import keep_csv_before_resume
    from gan_init.experiment.report import read_run_curves

    run = tmp_path / "noise_2d" / "scratch-stem-seed0"
    log_dir = run / "csv"
    log_dir.mkdir(parents=True)
    _write_csv(log_dir / "metrics.csv", [(100, 9.0), (200, 8.0), (300, 7.5)])
    assert keep_csv_before_resume(log_dir) == log_dir / "metrics.before-resume-1.csv"
    # the first attempt died after 300 images; its checkpoint was at 250
    _write_csv(log_dir / "metrics.csv", [(300, 7.0), (400, 6.0)])
    assert keep_csv_before_resume(log_dir) == log_dir / "metrics.before-resume-2.csv"
    _write_csv(log_dir / "metrics.csv", [(500, 5.0)])
    xs, ys = read_run_curves(run)["eval/swd"]
    assert xs.tolist() == [100, 200, 300, 400, 500]
    assert ys.tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]


def test_plot_labels_give_the_deciding_holm_p_and_runs_missing_strategies(tmp_path):
    from gan_init.experiment.report.plots import _deciding_p, _paired_panel, plot_paired
    from gan_init.experiment.stats import DEFAULT_SPEC, Comparison, paired_t

    def comparison(strategy, verdict, p_holm, tost_holm):
        test = paired_t([1.0, 2.0, 3.0])
        return Comparison(strategy, "stem", [0, 1, 2], [1.0, 2.0, 3.0], 2.0, 0.0, test, 5.0,
                          0.5, 4.0, p_holm=p_holm, tost_holm=tost_holm, verdict=verdict)  # fmt: skip

    better = comparison("cyclegan", "better", 0.012, 0.9)
    equivalent = comparison("cyclegan_untrained", "equivalent", 0.7, 0.03)
    inconclusive = comparison("cyclegan_t1_to_t2", "inconclusive", 0.2, 0.4)
    assert _deciding_p(better) == "n=3, Holm p 0.012"
    assert _deciding_p(equivalent) == "n=3, TOST 0.03"
    assert _deciding_p(inconclusive) == "n=3, Holm p 0.2, TOST 0.4"
    # a sweep without one of the strategies: its rows say so, the plot is still written
    panels = [
        ("2D a", DEFAULT_SPEC, [better, equivalent, inconclusive]),
        ("3D b", DEFAULT_SPEC, [better]),
    ]
    out = plot_paired(panels, tmp_path / "paired.png")
    import matplotlib.pyplot as plt
    from PIL import Image

    # readable at the README's width (~900 px): two sweeps side by side, not one wide strip
    assert Image.open(out).size[0] <= 1500
    fig, ax = plt.subplots()
    strategies = ["cyclegan_untrained", "cyclegan_t1_to_t2", "cyclegan"]
    _paired_panel(ax, [better], strategies, DEFAULT_SPEC)
    labels = {round(t.xyann[1] if hasattr(t, "xyann") else t.get_position()[1]): t.get_text()
              for t in ax.texts if t.get_text() not in ("← better | worse →",)}  # fmt: skip
    plt.close(fig)
    assert labels == {
        0: "not run here",
        1: "not run here",
        2: "better\nn=3, Holm p 0.012",
    }


def test_a_part_missing_in_a_growth_mode_is_said_not_drawn_empty(tmp_path, monkeypatch):
    """`to_image` exists with `full` growth only: its `stem` panel says so instead of empty axes."""
    import matplotlib.pyplot as plt

    from gan_init.experiment.report import Run, plot_diagnostic, plots

    x, y = np.array([0.0, 100.0]), np.array([0.0, 0.1])
    full = {"diag/weight_dist/trunk": (x, y), "diag/weight_dist/to_image": (x, y)}
    runs = [
        Run(2, "scratch", "full", 0, "finished", tmp_path, "c", curves=full),
        Run(2, "scratch", "stem", 0, "finished", tmp_path, "c", curves={"diag/weight_dist/trunk": (x, y)}),
    ]  # fmt: skip
    figures = []
    monkeypatch.setattr(plots, "_pyplot", lambda: plt)
    monkeypatch.setattr(plt, "close", figures.append)
    assert plot_diagnostic(runs, "weight_dist", tmp_path / "d.png", "2D").is_file()
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in figures[0].axes}
    assert texts["to_image, grow stem"] == ["no to_image in grow stem"]
    assert texts["to_image, grow full"] == [] and texts["trunk, grow stem"] == []
