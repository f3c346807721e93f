"""The map from a committed run table alone (tests/data/map_table.csv and its .json): verdicts
checked by hand, tuning seeds refused, the pilot described without verdicts, and a run folder's
row."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from gan_init.cli.commands.report import main as report_main
from gan_init.experiment.report.map import SeedPlan, load_results
from gan_init.experiment.run_table import COLUMNS, read_table, row_of, write_table
from gan_init.runs import METRICS_FINAL, RunSummary

TABLE = Path(__file__).parent / "data" / "map_table.csv"


def _endpoints(arm: str, cell: tuple[str, str, str]) -> dict[int, float]:
    with open(TABLE, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["arm"] == arm]
    return {
        int(r["seed"]): float(r["endpoint"])
        for r in rows
        if (r["train_subjects"], r["stress"], r["grow"]) == cell and r["endpoint"]
    }


def test_verdicts_from_the_committed_table_match_a_hand_computation(tmp_path):
    ((meta, cells),) = load_results([TABLE])
    unlimited = next(c for c in cells if c.cell == (None, 1.0, "none"))
    cyc = next(c for c in unlimited.quality if c.strategy == "cyclegan")
    # By hand: paired differences over the six seeds, t interval and two-sided p.
    arm, base = _endpoints("cyclegan", ("", "1", "none")), _endpoints("scratch", ("", "1", "none"))
    d = np.array([arm[s] - base[s] for s in sorted(base)])
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert cyc.test.mean == pytest.approx(d.mean())
    assert cyc.test.ci == pytest.approx((d.mean() - half, d.mean() + half))
    p = 2 * sps.t.sf(abs(d.mean()) / (d.std(ddof=1) / np.sqrt(len(d))), len(d) - 1)
    other = next(c for c in unlimited.quality if c.strategy == "cyclegan_untrained")
    q = other.test.p  # Holm over the cell's two arms, by hand
    assert cyc.p_holm == pytest.approx(min(1.0, 2 * p) if p <= q else max(min(1.0, 2 * q), p))
    assert cyc.verdict == "better" and cyc.margin == 8.0
    assert other.verdict == "equivalent"  # |CI| well inside ±8
    # Stability in the stressed scarce cell: scratch failed 4 of 6, cyclegan none: McNemar on the
    # 4 discordant pairs, exact: 2 * (1/2)^4 = 0.125, Holm x2 over the two arms at most.
    stressed = next(c for c in cells if c.cell == (16, 4.0, "stem"))
    s = stressed.stability["cyclegan"]
    assert (s.failures, s.runs, s.discordant) == (0, 6, (0, 4))
    assert s.p == pytest.approx(0.125)
    # The diverged run leaves the quality pairs (unpaired), and counts as a failure.
    untrained = next(c for c in stressed.quality if c.strategy == "cyclegan_untrained")
    assert untrained.test.n == 5 and untrained.unpaired == [5]
    assert stressed.stability["cyclegan_untrained"].failures == 1


def test_report_command_rebuilds_the_map_from_the_table_alone(tmp_path):
    assert report_main([str(TABLE), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "map.md").read_text()
    assert "| cyclegan | " in text and "**better**" in text and "**equivalent**" in text
    assert (tmp_path / "map.png").stat().st_size > 10_000


def test_tuning_seeds_are_refused_in_one_line_and_the_pilot_is_descriptive(tmp_path, capsys):
    table = tmp_path / "pilot.csv"
    shutil.copy(TABLE, table)
    meta = json.loads(TABLE.with_suffix(".json").read_text())
    meta["seeds"] = {"tuning": [0, 1, 2, 3, 4, 5], "confirmatory": [10, 11]}
    table.with_suffix(".json").write_text(json.dumps(meta))
    assert report_main([str(table), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tuning seeds" in err and "--pilot" in err
    assert report_main([str(table), "--out", str(tmp_path / "m"), "--pilot"]) == 0
    text = (tmp_path / "m" / "map.md").read_text()
    assert "Pilot" in text and "**better**" not in text
    with pytest.raises(ValueError, match="both tuning and confirmatory"):
        SeedPlan.from_dict({"tuning": [1, 2], "confirmatory": [2]}, "sweep.yaml: seeds")


def test_a_relative_margin_is_refused(tmp_path, capsys):
    table = tmp_path / "t.csv"
    shutil.copy(TABLE, table)
    meta = json.loads(TABLE.with_suffix(".json").read_text())
    meta["endpoints"]["margin"] = "10%"
    table.with_suffix(".json").write_text(json.dumps(meta))
    assert report_main([str(table), "--out", str(tmp_path / "m")]) == 2
    assert "absolute margin" in capsys.readouterr().err


def test_a_run_folder_becomes_a_row_and_the_table_round_trips(tmp_path):
    run = tmp_path / "runs" / "noise_2d_sweep" / "cyclegan-none-seed3-n16"
    run.mkdir(parents=True)
    summary = RunSummary(
        status="finished", run_dir=str(run), dims=2, init_strategy="cyclegan", grow="none",
        seed=3, noise_config="noise_2d_sweep", train_subjects=16, stress=4.0, augment=None,
        seconds=12.5, threads=1,
        metrics={"eval/full/swd_mean": 50.5, "eval/full/swd": 49.0, "eval/swd_floor": 22.0},
    )  # fmt: skip
    summary.write()
    (run / METRICS_FINAL).write_text(json.dumps({"failure": "collapsed", "metrics": {}}))
    summary.augment = "translation,cutout"  # a policy holds commas: the CSV quotes it
    row = row_of(run, summary)
    assert list(row) == list(COLUMNS)
    assert (row["arm"], row["train_subjects"], row["stress"], row["failure"]) == (
        "cyclegan+aug", 16, 4.0, "collapsed",
    )  # fmt: skip
    assert row["endpoint"] == 50.5 and row["final_swd"] == 49.0
    path = write_table([row], tmp_path / "t.csv", {"sweep": "s"})
    rows, meta = read_table(path)
    assert rows[0]["endpoint"] == 50.5 and rows[0]["seed"] == 3
    assert rows[0]["augment"] == "translation,cutout" and rows[0]["threads"] == 1
    assert meta["sweep"] == "s" and meta["runs"] == 1


def test_tables_split_by_cell_are_analysed_as_one_sweep(tmp_path):
    lines = TABLE.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    stem = header.split(",").index("grow")
    meta = json.loads(TABLE.with_suffix(".json").read_text())
    parts = []
    for grow in ("none", "stem"):
        part = tmp_path / f"{grow}.csv"
        part.write_text(
            "\n".join([header] + [r for r in rows if r.split(",")[stem] == grow]) + "\n"
        )
        part.with_suffix(".json").write_text(json.dumps({**meta, "sweep": grow}))
        parts.append(part)
    ((_, whole),) = load_results([TABLE])
    ((merged_meta, split),) = load_results(parts)
    assert [(c.cell, [q.verdict for q in c.quality]) for c in split] == [
        (c.cell, [q.verdict for q in c.quality]) for c in whole
    ]
    assert merged_meta["sweep"] == "none + stem"
    other = tmp_path / "stem.json"
    other.write_text(json.dumps({**meta, "endpoints": {**meta["endpoints"], "margin": 3.0}}))
    with pytest.raises(ValueError, match="need one plan"):
        load_results(parts)


def test_the_runs_folder_report_never_pairs_runs_of_different_cells(tmp_path):
    """``gan-init report RUNS``: runs of two cells with the same strategy, growth and seed stay
    apart (the growth label carries the cell), and a sweep's run-table meta is no sweep state."""
    from gan_init.experiment.report.read import collect_runs, sweep_states

    runs = tmp_path / "runs"
    for name, size, stress in (("a", None, 1.0), ("b", 4, 8.0)):
        run = runs / "noise_2d_sweep" / name
        run.mkdir(parents=True)
        RunSummary(
            status="finished", run_dir=str(run), dims=2, init_strategy="scratch", grow="none",
            seed=0, train_subjects=size, stress=stress, metrics={"eval/full/swd_mean": 1.0},
        ).write()  # fmt: skip
    (runs / "sweeps").mkdir()
    (runs / "sweeps" / "s.json").write_text(json.dumps({"runs": []}))
    (runs / "sweeps" / "s.table.json").write_text(json.dumps({"sweep": "s"}))
    groups = sorted(r.group for r in collect_runs(runs))
    assert groups == ["scratch (none)", "scratch (none, 4 subjects, stress x8)"]
    assert [p.name for p, _ in sweep_states(runs)] == ["s.json"]


def test_summary_table_and_the_grid_choice_come_from_the_cells():
    from gan_init.experiment.report.map_render import grid_cells, median_seed, summary_table

    ((_, cells),) = load_results([TABLE])
    lines = summary_table(cells)
    row = next(line for line in lines if line.startswith("| `cyclegan` |"))
    assert "better; 0 of 6" in row and row.count("|") == len(cells) + 2
    assert lines[-1].startswith("| smallest detectable")
    # The cell where cyclegan differs most (the stressed one, -74) first, then unlimited/default.
    chosen = grid_cells(cells)
    assert [c.cell for c in chosen] == [(16, 4.0, "stem"), (None, 1.0, "none")]
    # The median seed by hand: the lower middle of the six sorted paired differences.
    arm, base = _endpoints("cyclegan", ("", "1", "none")), _endpoints("scratch", ("", "1", "none"))
    ranked = sorted((arm[s] - base[s], s) for s in base)
    assert median_seed(chosen[1]) == ranked[2][1]


def test_memorization_per_arm_and_cell_is_the_mean_and_the_largest_run(tmp_path):
    """The map shows, per arm and cell, the mean share of memorized samples and the largest run's
    (a scarce cell where a start copies its few training subjects must be visible)."""
    from gan_init.experiment.report.map_render import dims_section

    rows, meta = read_table(TABLE)
    shares = {0: 0.5, 1: 0.25, 2: 0.0, 3: 0.125, 4: 0.0, 5: 0.0}
    for row in rows:
        if row["arm"] == "cyclegan" and row["train_subjects"] is None and row["grow"] == "none":
            row["memo_fraction"] = shares[int(row["seed"])]
    table = tmp_path / "t.table.csv"
    write_table(rows, table, meta)
    ((meta, cells),) = load_results([table])
    unlimited = next(c for c in cells if c.cell == (None, 1.0, "none"))
    d = unlimited.diagnostics["cyclegan"]
    assert d["memo_fraction"] == pytest.approx(np.mean(list(shares.values())))
    assert d["memo_fraction_max"] == 0.5
    assert unlimited.diagnostics["scratch"]["memo_fraction_max"] == 0.0
    text = "\n".join(dims_section(meta, cells, pilot=False))
    memo = text.split("### Memorization")[1]
    assert "| cyclegan | 0 / 0 | 0.15 / 0.5 |" in memo


def test_grids_of_two_dimensionalities_get_their_own_folders(tmp_path, monkeypatch):
    """`--runs` takes a folder per dimensionality; a 2D and a 3D cell with the same label and
    median seed are drawn into grid_2d_... and grid_3d_..., from their own run folders."""
    from types import SimpleNamespace

    import gan_init.experiment.compare as compare
    import gan_init.runs as runs
    from gan_init.experiment.report.map_render import draw_grids

    rows, meta = read_table(TABLE)
    for row in rows:
        row["dims"], row["noise_config"] = 3, "noise_3d_sweep"
    write_table(rows, tmp_path / "t3.table.csv", meta)
    ((_, cells_2d),) = load_results([TABLE])
    ((_, cells_3d),) = load_results([tmp_path / "t3.table.csv"])

    def summaries(runs_dir):
        dims = 2 if Path(runs_dir).name == "runs2d" else 3
        return [
            (Path(runs_dir) / f"{r['arm']}-{r['seed']}-{r['train_subjects']}-{r['stress']}",
             SimpleNamespace(dims=dims, arm=r["arm"], train_subjects=r["train_subjects"],
                             stress=r["stress"], grow=r["grow"], seed=r["seed"]))
            for r in rows
        ]  # fmt: skip

    drawn = []

    def fake_compare(pair, folder):
        drawn.append((pair, folder))
        return folder / "comparison.md"

    monkeypatch.setattr(runs, "run_summaries", summaries)
    monkeypatch.setattr(compare, "compare_runs", fake_compare)
    dirs = [tmp_path / "runs2d", tmp_path / "runs3d"]
    lines = draw_grids(cells_2d, dirs, tmp_path) + draw_grids(cells_3d, dirs, tmp_path)
    folders = [folder.name for _, folder in drawn]
    assert len(folders) == len(set(folders)) == 4  # two cells per dimensionality
    assert sum(f.startswith("grid_2d_") for f in folders) == 2
    for pair, folder in drawn:
        parent = "runs2d" if folder.name.startswith("grid_2d_") else "runs3d"
        assert [p.parent.name for p in pair] == [parent, parent]
        assert [p.name.split("-")[0] for p in pair] == ["scratch", "cyclegan"]
    assert sum("comparison.png" in line for line in lines) == 4
