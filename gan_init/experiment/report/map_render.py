"""The map's Markdown and figure, from ``map.CellResult`` records (no file is read here).

``write_map_report(tables, out_dir)`` is what ``gan-init report TABLE.csv [TABLE.csv ...]``
runs: ``map.md`` (per dimensionality a summary table, a row per arm and a column per cell, then
the quality, stability, spread, detectable-effect and diagnostics tables) and ``map.png``
(paired differences per cell with the margin band). With ``runs_dirs`` (``--runs DIR ...``, the run
folders the tables came from) it also draws ``scratch`` beside ``cyclegan`` (the same fixed
latents, ``gan_init.experiment.compare``) at the median-difference seed of the cell where they
differ most and of the unlimited, default cell: the one part of the map that needs the runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gan_init.core.files import write_atomic
from gan_init.experiment.report.map import CellResult, load_results
from gan_init.experiment.stats import BASELINE, VERDICT_RULE, Comparison


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _quality_cell(c: Comparison | None, pilot: bool) -> str:
    if c is None:
        return "-"
    lo, hi = c.test.ci
    text = f"{c.test.mean:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    return text if pilot else f"{text} **{c.verdict}**"


def _stability_cell(result: CellResult, arm: str, pilot: bool) -> str:
    s = result.stability.get(arm)
    if s is None:
        return "-"
    text = f"{s.failures}/{s.runs}"
    if arm != BASELINE and not pilot:
        text += f" (p {_num(s.p_holm, 2)})"
    return text


def _arms(results: list[CellResult]) -> list[str]:
    arms = sorted({a for r in results for a in r.stability})
    return [BASELINE] * (BASELINE in arms) + [a for a in arms if a != BASELINE]


def _grid(results: list[CellResult], cell_text: Any) -> list[str]:
    arms = _arms(results)
    lines = ["| arm | " + " | ".join(r.label for r in results) + " |"]
    lines.append("|---" * (len(results) + 1) + "|")
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(cell_text(r, arm) for r in results) + " |")
    return lines


def _comparison(result: CellResult, arm: str) -> Comparison | None:
    return next((c for c in result.quality if c.strategy == arm), None)


def _signed(x: float) -> str:
    return f"{x:+.1f}" if abs(x) < 100 else f"{x:+.0f}"


def _summary_cell(result: CellResult, arm: str, pilot: bool) -> str:
    s = result.stability.get(arm)
    if s is None:
        return "not run"
    failed = f"{s.failures} of {s.runs}"
    c = _comparison(result, arm)
    if arm == BASELINE or c is None:
        return failed
    lo, hi = c.test.ci
    verdict = "" if pilot else f" {c.verdict}"
    return f"{_signed(c.test.mean)} [{_signed(lo)}, {_signed(hi)}]{verdict}; {failed}"


def summary_table(results: list[CellResult], pilot: bool = False) -> list[str]:
    """A row per arm, a column per cell: the paired difference to scratch with its 95% CI and
    verdict, and failed runs; the last row the smallest detectable difference (the README's)."""
    arms = _arms(results)
    header = "arm − scratch: Δ [95% CI], verdict; failed runs"
    lines = [f"| {header} | " + " | ".join(r.label for r in results) + " |"]
    lines.append("| --- " * (len(results) + 1) + "|")
    for arm in arms:
        name = f"`{arm}`" + (" (failed)" if arm == BASELINE else "")
        lines.append(
            f"| {name} | " + " | ".join(_summary_cell(r, arm, pilot) for r in results) + " |"
        )
    mdes = []
    for r in results:
        values = [c.mde for c in r.quality if math.isfinite(c.mde)]
        mdes.append(f"{min(values):.0f}-{max(values):.0f}" if values else "-")
    lines.append("| smallest detectable Δ (80% power) | " + " | ".join(mdes) + " |")
    return lines


def dims_section(meta: dict, results: list[CellResult], pilot: bool) -> list[str]:
    """The map of one sweep: quality, stability, detectable effect, diagnostics."""
    if not results:
        return []
    endpoints = meta.get("endpoints", {})
    seeds = sorted({s for r in results for s in r.seeds})
    lines = [
        f"## {results[0].dims}D: {meta.get('sweep', '')}",
        "",
        f"Primary endpoint `{endpoints.get('primary')}`, lower is better; margin "
        f"±{endpoints.get('margin')} (absolute, fixed before the runs); alpha "
        f"{endpoints.get('alpha')}; seeds {seeds}; threads per run {meta.get('threads', 'n/a')}.",
        "",
        "### Summary",
        "",
        *summary_table(results, pilot),
        "",
        "### Quality: paired difference arm - scratch (95% CI)" + ("" if pilot else " and verdict"),
        "",
        *_grid(
            results,
            lambda r, a: "(baseline)" if a == BASELINE else _quality_cell(_comparison(r, a), pilot),
        ),
        "",
        "### Stability: failed runs"
        + ("" if pilot else " (exact McNemar vs scratch, Holm across the cell's arms)"),
        "",
        *_grid(results, lambda r, a: _stability_cell(r, a, pilot)),
        "",
        "### Seed-to-seed spread of the final full-resolution SWD: SD arm / SD scratch"
        + ("" if pilot else " (Pitman-Morgan, Holm)"),
        "",
        *_grid(results, lambda r, a: _spread_cell(r, a, pilot)),
        "",
        "### Smallest detectable difference (80% power) and the pairs it rests on",
        "",
        *_grid(results, _mde_cell),
        "",
        "### Transfer diagnostics at the end: CKA trunk / decoder, weight distance trunk",
        "",
        *_grid(results, _diag_cell),
        "",
        "### Memorization: share of samples nearer a training image than 95% of held-out "
        "images are (mean / largest run; near 0 when nothing is copied)",
        "",
        *_grid(results, _memo_cell),
        "",
    ]
    return lines


def _spread_cell(result: CellResult, arm: str, pilot: bool) -> str:
    s = result.stability.get(arm)
    if s is None or arm == BASELINE:
        return "-"
    text = f"{_num(s.sd)} / {_num(s.sd_base)}"
    return text if pilot else f"{text} (p {_num(s.var_p_holm, 2)})"


def _mde_cell(result: CellResult, arm: str) -> str:
    c = _comparison(result, arm)
    if c is None:
        return "-"
    dropped = f", {len(c.unpaired)} unpaired" if c.unpaired else ""
    return f"{_num(c.mde)} ({c.test.n} pairs{dropped})"


def _diag_cell(result: CellResult, arm: str) -> str:
    d = result.diagnostics.get(arm) or {}
    if not d:
        return "-"
    keys = ("cka_trunk", "cka_decoder", "weight_dist_trunk")
    return " / ".join(_num(d.get(k, math.nan), 2) for k in keys)


def _memo_cell(result: CellResult, arm: str) -> str:
    d = result.diagnostics.get(arm) or {}
    if "memo_fraction" not in d:
        return "-"
    return f"{_num(d['memo_fraction'], 2)} / {_num(d['memo_fraction_max'], 2)}"


def plot_map(sections: list[tuple[dict, list[CellResult]]], out: Path) -> Path | None:
    """Paired differences (mean and 95% CI) per arm, the margin as a band: a panel per cell, each
    on its own scale (a failing cell's spread would flatten the others), two panels a row, the
    sweeps one below the other (2D above 3D)."""
    from gan_init.experiment.report.plots import _pyplot

    panels = [(meta, results) for meta, results in sections if results]
    if not panels:
        return None
    plt = _pyplot()
    ncols = min(2, max(len(r) for _, r in panels))
    layout = [(meta, results[i : i + ncols]) for meta, results in panels
              for i in range(0, len(results), ncols)]  # fmt: skip
    fig, axes = plt.subplots(
        len(layout), ncols, figsize=(5.0 * ncols, 3.9 * len(layout)), squeeze=False
    )
    for row, (meta, results) in enumerate(layout):
        arms = [a for a in _arms(results) if a != BASELINE]
        margin = float(meta.get("endpoints", {}).get("margin", math.nan))
        for col in range(ncols):
            ax = axes[row][col]
            if col >= len(results):
                ax.axis("off")
                continue
            _cell_panel(ax, results[col], arms, margin)
            if col == 0:
                ax.set_ylabel(f"{results[0].dims}D: arm - scratch\n(lower: better)")
    fig.suptitle(f"paired difference of {panels[0][0].get('endpoints', {}).get('primary')}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _cell_panel(ax: Any, result: CellResult, arms: list[str], margin: float) -> None:
    ax.axhspan(-margin, margin, color="0.88", label=f"margin ±{margin:g}")
    ax.axhline(0, color="0.4", lw=0.8)
    for k, arm in enumerate(arms):
        c = _comparison(result, arm)
        if c is None or not math.isfinite(c.test.mean):
            continue
        lo, hi = c.test.ci
        err = [
            [c.test.mean - lo if math.isfinite(lo) else 0.0],
            [hi - c.test.mean if math.isfinite(hi) else 0.0],
        ]
        ax.errorbar([k], [c.test.mean], yerr=err, fmt="o", capsize=4, color=f"C{k}")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels([a.replace("cyclegan_", "cyclegan_\n") for a in arms], fontsize=8)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    ax.set_title(result.label, fontsize=10)
    ax.legend(fontsize=8, loc="best")


def grid_cells(results: list[CellResult], arm: str = "cyclegan") -> list[CellResult]:
    """The cell where ``arm`` differs most from scratch (largest |mean paired difference|), and
    the unlimited, default cell, without repeats."""
    scored = [(abs(c.test.mean), r) for r in results if (c := _comparison(r, arm))
              and math.isfinite(c.test.mean)]  # fmt: skip
    chosen = [max(scored, key=lambda t: t[0])[1]] if scored else []
    chosen += [r for r in results if r.cell[:2] == (None, 1.0) and r not in chosen]
    return chosen


def median_seed(result: CellResult, arm: str = "cyclegan") -> int | None:
    """The seed whose paired difference (arm - scratch) is the cell's median (the lower one of
    an even count)."""
    c = _comparison(result, arm)
    if c is None or not c.seeds:
        return None
    ranked = sorted(zip(c.diffs, c.seeds))
    return ranked[(len(ranked) - 1) // 2][1]


def draw_grids(results: list[CellResult], runs_dirs: list[Path], out_dir: Path) -> list[str]:
    """Markdown lines with ``scratch`` beside ``cyclegan`` for ``grid_cells``, from the run
    folders under ``runs_dirs`` (``gan_init.experiment.compare.compare_runs``); the figures are
    ``grid_<dims>d_<cell>_seed<k>/``."""
    from gan_init.experiment.compare import compare_runs
    from gan_init.runs import run_summaries

    folders = {}
    for runs_dir in runs_dirs:
        for path, s in run_summaries(runs_dir):
            key = (s.dims, s.arm, s.train_subjects, float(s.stress or 1.0), s.grow, s.seed)
            folders[key] = path
    where = ", ".join(str(d) for d in runs_dirs)
    lines = []
    for result in grid_cells(results):
        seed = median_seed(result)
        size, stress, grow = result.cell
        pair = [
            folders.get((result.dims, a, size, stress, grow, seed)) for a in ("scratch", "cyclegan")
        ]
        if seed is None or None in pair:
            lines += [f"(no run folders under {where} for {result.label}, seed {seed})", ""]
            continue
        slug = result.label.replace(", ", "_").replace(" ", "-")
        folder = out_dir / f"grid_{result.dims}d_{slug}_seed{seed}"
        figure = compare_runs(pair, folder).with_suffix(".png")
        rel = figure.relative_to(out_dir)
        lines += [f"![{result.label}, seed {seed} (median difference): scratch above cyclegan, "
                  f"the same latents]({rel})", ""]  # fmt: skip
    return lines


def write_map_report(
    tables: list[Path],
    out_dir: Path,
    pilot: bool = False,
    runs_dirs: list[str | Path] | None = None,
) -> Path:
    """``map.md`` and ``map.png`` in ``out_dir`` from the run tables alone; with ``runs_dirs``
    also the sample grids."""
    sections = load_results([Path(t) for t in tables], pilot=pilot)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = "Pilot (tuning seeds): descriptive only, no verdicts" if pilot else "The map"
    lines = [f"# {title}", "", f"From: {', '.join(str(t) for t in tables)}", ""]
    if not pilot:
        lines += [
            f"Verdicts: {VERDICT_RULE} Holm's family: the arms of one cell, adjusted separately "
            "for the difference and the equivalence tests (and, under stability, for each test).",
            "",
            "Quality pairs need both runs' endpoints: a run that diverged has none, leaves the "
            "quality pairs (counted as unpaired) and counts as a failure under stability.",
            "",
        ]
    figure = plot_map(sections, out_dir / "map.png")
    if figure is not None:
        lines += [f"![paired differences per cell]({figure.name})", ""]
    for meta, results in sections:
        lines += dims_section(meta, results, pilot)
        if runs_dirs and results:
            dirs = [Path(d) for d in runs_dirs]
            lines += ["### Sample grids", "", *draw_grids(results, dirs, out_dir)]
    path = out_dir / "map.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path
