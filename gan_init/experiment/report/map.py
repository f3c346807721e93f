"""The answer as a map, from a run table alone (``gan_init.experiment.run_table``).

Reads the rows of one or more run tables (one per sweep: a dimensionality and a noise config)
and their meta (the pre-specified ``endpoints``, the declared ``seeds``). A *cell* is one
setting of the factors every arm shares: training-set size x stress x growth mode. In each cell
every arm is compared with ``scratch`` of the same seed:

- quality: the primary endpoint's paired difference (arm - scratch), its 95% CI, the paired t
  test and TOST against the absolute margin, Holm-adjusted across the arms of the cell, and the
  verdict (``stats.VERDICT_RULE``); the smallest effect the cell's pairs detect (``mde``).
  Pairs in which either run has no endpoint (it diverged) leave the quality analysis and count
  under stability;
- stability: failure rate per arm (``failure`` not ``none``), the exact McNemar test on the
  seeds where one of the two failed, and the Pitman-Morgan test of equal seed-to-seed spread of
  the final full-resolution SWD; each its own Holm family across the arms of the cell;
- transfer diagnostics: the mean final CKA and weight distance of trunk and decoder per arm.

Verdicts are drawn only from confirmatory seeds: a table whose seeds meet the declared tuning
seeds is refused (``SeedPlan.check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.experiment.stats import (
    BASELINE,
    Comparison,
    EndpointSpec,
    compare_to_baseline,
    holm,
    mcnemar_exact,
    paired_variance_test,
)

SEEDS_KEY = "seeds"


@dataclass(frozen=True)
class SeedPlan:
    """Seeds declared in a sweep file before its runs: ``tuning`` (pilots choose settings on
    them) and ``confirmatory`` (run once, after the choices are written down); disjoint."""

    tuning: tuple[int, ...] = ()
    confirmatory: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> SeedPlan:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"tuning", "confirmatory"}:
            raise ValueError(
                f"{where}: expected a mapping with tuning and confirmatory seed lists, e.g. "
                "seeds: {tuning: [100, 101], confirmatory: [0, 1, 2, 3, 4, 5, 6, 7]}"
            )
        lists = {}
        for key in ("tuning", "confirmatory"):
            values = raw.get(key) or []
            if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values
            ):
                raise ValueError(f"{where}.{key}: expected a list of integer seeds, got {values!r}")
            lists[key] = tuple(values)
        shared = sorted(set(lists["tuning"]) & set(lists["confirmatory"]))
        if shared:
            raise ValueError(
                f"{where}: seeds {shared} are declared both tuning and confirmatory; a seed that "
                "chose a setting cannot test it: remove them from one list"
            )
        return cls(**lists)

    def check(self, seeds: set[int], where: str) -> None:
        """Refuse verdicts from runs on tuning seeds (one line)."""
        used = sorted(seeds & set(self.tuning))
        if used:
            raise ValueError(
                f"{where}: runs of seeds {used} are declared tuning seeds, which chose this "
                "sweep's settings; verdicts need confirmatory seeds (run the sweep with its "
                "confirmatory seeds, or read the pilot with gan-init report TABLE --pilot)"
            )

    def to_dict(self) -> dict[str, list[int]]:
        return {"tuning": list(self.tuning), "confirmatory": list(self.confirmatory)}


Cell = tuple[int | None, float, str]  # (train_subjects, stress, grow)


def cell_of(row: dict[str, Any]) -> Cell:
    return (row.get("train_subjects"), float(row.get("stress") or 1.0), str(row["grow"]))


def cell_label(cell: Cell) -> str:
    size, stress, grow = cell
    size_text = "unlimited" if size is None else f"{size} subjects"
    stress_text = "default" if stress == 1.0 else f"stress x{stress:g}"
    return f"{size_text}, {stress_text}, {grow}"


def _cell_order(cell: Cell) -> tuple:
    size, stress, grow = cell
    return (size is None, size or 0, stress, grow)


def failed(row: dict[str, Any]) -> bool:
    return (row.get("failure") or "none") != "none"


@dataclass
class ArmStability:
    arm: str
    runs: int
    failures: int
    discordant: tuple[int, int] = (0, 0)  # (only the arm failed, only scratch failed)
    p: float = math.nan
    p_holm: float = math.nan
    sd: float = math.nan
    sd_base: float = math.nan
    var_p: float = math.nan
    var_p_holm: float = math.nan


@dataclass
class CellResult:
    """One cell of one sweep: quality comparisons, stability and diagnostics per arm."""

    sweep: str
    dims: int
    cell: Cell
    quality: list[Comparison]
    stability: dict[str, ArmStability]
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return cell_label(self.cell)


def _by_arm_seed(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(str(row["arm"]), {})[int(row["seed"])] = row
    return out


def _stability(by_arm: dict[str, dict[int, dict[str, Any]]]) -> dict[str, ArmStability]:
    base = by_arm.get(BASELINE, {})
    out = {
        arm: ArmStability(arm, len(runs), sum(failed(r) for r in runs.values()))
        for arm, runs in by_arm.items()
    }
    others = [a for a in sorted(by_arm) if a != BASELINE]
    for arm in others:
        seeds = sorted(set(by_arm[arm]) & set(base))
        b, c, p = mcnemar_exact(
            [failed(by_arm[arm][s]) for s in seeds], [failed(base[s]) for s in seeds]
        )
        finite = [
            s for s in seeds
            if _finite(by_arm[arm][s].get("final_swd")) and _finite(base[s].get("final_swd"))
        ]  # fmt: skip
        sd, sd_base, var_p = paired_variance_test(
            [by_arm[arm][s]["final_swd"] for s in finite], [base[s]["final_swd"] for s in finite]
        )
        out[arm].discordant, out[arm].p = (b, c), p
        out[arm].sd, out[arm].sd_base, out[arm].var_p = sd, sd_base, var_p
    for key, adjusted in (("p", "p_holm"), ("var_p", "var_p_holm")):
        for arm, q in zip(others, holm([getattr(out[a], key) for a in others])):
            setattr(out[arm], adjusted, q)
    return out


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


# Means per arm and cell: the transfer diagnostics, and the share of samples nearer a training
# image than 95% of held-out images are (memorization; about 0.05 or less when nothing is copied).
DIAGNOSTIC_MEANS = (
    "cka_trunk", "cka_decoder", "weight_dist_trunk", "weight_dist_decoder", "memo_fraction",
)  # fmt: skip


def _diagnostics(by_arm: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out = {}
    for arm, runs in by_arm.items():
        means = {}
        for key in DIAGNOSTIC_MEANS:
            values = [float(r[key]) for r in runs.values() if _finite(r.get(key))]
            if values:
                means[key] = float(np.mean(values))
                if key == "memo_fraction":
                    means["memo_fraction_max"] = float(np.max(values))
        out[arm] = means
    return out


def analyse_table(
    rows: list[dict[str, Any]], spec: EndpointSpec, sweep: str = ""
) -> list[CellResult]:
    """Every cell of one sweep's rows (one dims and noise config), in a stable order."""
    usable = [r for r in rows if r.get("status") in ("finished", "diverged")]
    results = []
    for cell in sorted({cell_of(r) for r in usable}, key=_cell_order):
        members = [r for r in usable if cell_of(r) == cell]
        values = {
            (str(r["arm"]), "cell", int(r["seed"])): float(r["endpoint"])
            for r in members
            if _finite(r.get("endpoint"))
        }
        quality = compare_to_baseline(
            values,
            metric=spec.primary.metric,
            margin=spec.margin,
            alpha=spec.alpha,
            power=spec.power,
        )
        by_arm = _by_arm_seed(members)
        results.append(
            CellResult(
                sweep=sweep,
                dims=int(members[0]["dims"]),
                cell=cell,
                quality=quality,
                stability=_stability(by_arm),
                diagnostics=_diagnostics(by_arm),
                seeds=sorted({int(r["seed"]) for r in members}),
            )
        )
    return results


def spec_and_plan(meta: dict[str, Any], where: str) -> tuple[EndpointSpec, SeedPlan]:
    """The pre-specified analysis and the declared seeds of a run table's meta."""
    raw = meta.get("endpoints")
    if raw is None:
        raise ValueError(
            f"{where}: the table's meta has no endpoints (the sweep file's endpoints: key); "
            "write the table with gan-init sweep, or add it to the .json beside the table"
        )
    spec = EndpointSpec.from_dict(raw, f"{where}: endpoints", source=where)
    if isinstance(spec.margin, str):
        raise ValueError(
            f"{where}: endpoints.margin {spec.margin!r} is relative; the map needs an absolute "
            "margin in the primary endpoint's units, fixed before the runs (e.g. margin: 8.0)"
        )
    return spec, SeedPlan.from_dict(meta.get(SEEDS_KEY), f"{where}: {SEEDS_KEY}")


def load_results(tables: list[Path], pilot: bool = False) -> list[tuple[dict, list[CellResult]]]:
    """``(meta, cells)`` per dimensionality and noise config: the rows of every table of one
    (a sweep may be split into files by cell) are analysed together, which needs their
    analysis plans to agree. Refuses tables on tuning seeds unless ``pilot``."""
    from gan_init.experiment.run_table import read_table

    groups: dict[tuple, tuple[dict, EndpointSpec, list[dict[str, Any]]]] = {}
    for path in tables:
        rows, meta = read_table(path)
        spec, plan = spec_and_plan(meta, str(path))
        if not pilot:
            plan.check({int(r["seed"]) for r in rows}, str(path))
        for key in sorted({(r["dims"], r["noise_config"]) for r in rows}):
            members = [r for r in rows if (r["dims"], r["noise_config"]) == key]
            if key in groups:
                first_meta, first_spec, kept = groups[key]
                if first_spec.to_dict() != spec.to_dict():
                    raise ValueError(
                        f"{path}: its endpoints differ from {first_meta.get('table')}'s for the "
                        f"same {key[0]}D config {key[1]}; tables analysed together need one plan"
                    )
                kept += members
                first_meta["sweep"] = f"{first_meta.get('sweep', '')} + {meta.get('sweep', '')}"
            else:
                groups[key] = ({**meta, "table": str(path)}, spec, list(members))
    return [
        (meta, analyse_table(rows, spec, sweep=meta.get("sweep", "")))
        for meta, spec, rows in groups.values()
    ]
