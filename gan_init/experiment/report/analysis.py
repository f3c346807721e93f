"""The analysis: one value per run and endpoint, then paired by seed against ``scratch``.

Reads only ``Run`` records (``report.read``) and endpoint specs; writes nothing. The statistics
themselves (paired t, Holm, TOST, power) are ``gan_init.experiment.stats``.
"""

from __future__ import annotations

import math

import numpy as np

from gan_init.experiment.report.read import Run
from gan_init.experiment.stats import (
    BASELINE,
    DEFAULT_SPEC,
    HIGHER_IS_BETTER,
    Comparison,
    Endpoint,
    EndpointSpec,
    compare_to_baseline,
    normalized_auc,
)

PRIMARY = ("eval/swd", "eval/fid")


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval (nan half-width for one value)."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    if len(arr) == 1:
        return float(arr[0]), math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return float(arr.mean()), float(half)


def value_at(run: Run, metric: str, budget: float) -> float | None:
    """The last evaluation at or before ``budget`` images shown."""
    if metric not in run.curves:
        return None
    xs, ys = run.curves[metric]
    i = int(np.searchsorted(xs, budget, side="right")) - 1
    return float(ys[i]) if i >= 0 else None


def images_to_reach(run: Run, metric: str, target: float) -> float | None:
    if metric not in run.curves:
        return None
    xs, ys = run.curves[metric]
    ok = ys >= target if metric in HIGHER_IS_BETTER else ys <= target
    return float(xs[np.argmax(ok)]) if ok.any() else None


def section_spec(
    runs: list[Run], specs: dict[tuple[str, str], EndpointSpec]
) -> tuple[EndpointSpec, str]:
    """The spec the section's runs were run under, and where it comes from."""
    found = [specs.get((r.path.parent.name, r.path.name)) for r in runs]
    distinct = {s.source: s for s in found if s is not None}
    if not distinct:
        return (
            DEFAULT_SPEC,
            "not pre-specified (no sweep recorded these runs): the report's default",
        )
    source = max(distinct, key=lambda k: sum(s is not None and s.source == k for s in found))
    note = f"pre-specified in `{source}`"
    if len(distinct) > 1:
        note += f" (the runs come from {len(distinct)} sweep files; this one holds most)"
    return distinct[source], note


def usable(runs: list[Run]) -> list[Run]:
    """Runs that enter the paired analysis: finished (diverged and failed runs are counted, and
    their seed's pair is incomplete)."""
    return [r for r in runs if r.status == "finished"]


def check_same_data(runs: list[Run]) -> None:
    """Refuse, in one line, to pair runs trained on different data (``data.name`` in each run's
    ``summary.json``; runs from before it was recorded trained on the built-in ICBM data)."""
    from gan_init.core.errors import UsageError
    from gan_init.core.files import read_json
    from gan_init.runs import SUMMARY

    first: dict[str, Run] = {}
    for run in runs:
        data = (read_json(run.path / SUMMARY) or {}).get("data") or {}
        first.setdefault(data.get("name", "icbm"), run)
    if len(first) > 1:
        (a, run_a), (b, run_b) = list(first.items())[:2]
        raise UsageError(
            f"{run_a.path} (data {a}) and {run_b.path} (data {b}) were trained on different "
            "data: pairing them would compare datasets, not init strategies; report each "
            "dataset's runs from their own runs folder (--runs_dir)"
        )


def reach_value(run: Run, scratch: Run | None, metric: str) -> tuple[float, bool] | None:
    """Images until ``run`` first reaches ``scratch``'s final ``metric`` (same seed), and whether
    it was censored at the run's budget (never reached)."""
    if scratch is None or metric not in run.curves or metric not in scratch.final:
        return None
    images = images_to_reach(run, metric, scratch.final[metric])
    if images is None:
        return float(run.curves[metric][0][-1]), True
    return images, False


def endpoint_values(
    runs: list[Run], endpoint: Endpoint
) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, str], int]]:
    """``{(strategy, grow, seed): value}`` over the usable runs, and the censored count per
    (strategy, grow) (``reach`` only)."""
    values: dict[tuple[str, str, int], float] = {}
    censored: dict[tuple[str, str], int] = {}
    good = usable(runs)
    check_same_data(good)
    scratch = {(r.grow, r.seed): r for r in good if r.strategy == BASELINE}
    for run in good:
        key = (run.strategy, run.grow, run.seed)
        if endpoint.summary == "auc" and endpoint.metric in run.curves:
            values[key] = normalized_auc(*run.curves[endpoint.metric])
        elif endpoint.summary == "final" and endpoint.metric in run.final:
            values[key] = run.final[endpoint.metric]
        elif endpoint.summary == "reach":
            reached = reach_value(run, scratch.get((run.grow, run.seed)), endpoint.metric)
            if reached is not None:
                values[key] = reached[0]
                censored[key[:2]] = censored.get(key[:2], 0) + reached[1]
    return values, censored


def analyse(runs: list[Run], spec: EndpointSpec, endpoint: Endpoint) -> list[Comparison]:
    """Paired comparisons to scratch; the margin (and so TOST) applies to the primary only."""
    values, _ = endpoint_values(runs, endpoint)
    margin = spec.margin if endpoint == spec.primary else None
    return compare_to_baseline(
        values, metric=endpoint.metric, margin=margin, alpha=spec.alpha, power=spec.power
    )
