"""The paired statistics against values computed by hand (closed forms in the comments)."""

import math
import warnings
from pathlib import Path

import pytest
import yaml

from gan_init.experiment.stats import (
    DEFAULT_SPEC,
    EndpointSpec,
    compare_to_baseline,
    holm,
    mde_paired,
    normalized_auc,
    paired_t,
    tost,
)

SWEEPS = sorted(Path(__file__).parents[1].glob("experiments/sweeps/*.yaml"))


def t4_two_sided(t: float) -> float:
    """Two-sided p of Student's t with 4 degrees of freedom, closed form: with
    sin(th) = t / sqrt(t^2 + 4), cos^2(th) = 4 / (t^2 + 4): p = 1 - sin(th) (1 + cos^2(th) / 2)."""
    s, c2 = abs(t) / math.sqrt(t * t + 4), 4 / (t * t + 4)
    return 1 - s * (1 + c2 / 2)


def test_normalized_auc_of_known_curves():
    # trapezoids (4+2)/2*10 + (2+2)/2*20 = 70 over a span of 30
    assert normalized_auc([0, 10, 30], [4, 2, 2]) == pytest.approx(70 / 30)
    assert normalized_auc([100, 200], [0.0, 1.0]) == pytest.approx(0.5)  # a line: its midpoint
    assert normalized_auc([30, 0, 10], [2, 4, 2]) == pytest.approx(70 / 30)  # order of points
    assert normalized_auc([5], [3.0]) == 3.0
    with pytest.raises(ValueError, match="equal-length"):
        normalized_auc([0, 1], [1.0])


def test_paired_t_by_hand():
    # d = 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3); df 2: p = 1 - t / sqrt(t^2 + 2)
    r = paired_t([1.0, 2.0, 3.0])
    t = 2 * math.sqrt(3)
    assert (r.n, r.mean, r.sd) == (3, 2.0, 1.0)
    assert r.p == pytest.approx(1 - t / math.sqrt(t * t + 2))  # 0.07418
    assert r.ci == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)))
    assert paired_t([2.0]).n == 1 and math.isnan(paired_t([2.0]).p)
    assert paired_t([1.0, 1.0]).p == 0.0 and paired_t([1.0, 1.0]).ci == (1.0, 1.0)


def test_tost_by_hand():
    # d = 2, -2, 1, -1, 0.5: mean 0.1, sd sqrt(10.2 / 4), se sd / sqrt(5); margin 1
    d = [2, -2, 1, -1, 0.5]
    se = math.sqrt(10.2 / 4) / math.sqrt(5)
    t_high = (0.1 - 1) / se  # the binding side: H0 mean >= +1
    assert tost(d, 1.0) == pytest.approx(t4_two_sided(t_high) / 2)  # one-sided = half
    assert tost(d, 1.0) == pytest.approx(0.13804, abs=1e-5)
    assert math.isnan(tost(d, math.nan)) and math.isnan(tost([1.0], 1.0))


def test_holm_on_a_known_example():
    # sorted 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1, running max 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, math.nan, 0.04])  # nan stays out of the family (m = 2)
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_mde_on_known_cases():
    # Cohen (1988) / G*Power: a one-sample (paired) t test, two-sided alpha 0.05, needs 34 pairs
    # for 80% power at d = 0.5, so 33 pairs cannot detect 0.5 sd and 34 can.
    assert mde_paired(1.0, 33) > 0.5 > mde_paired(1.0, 34)
    # large n: the normal approximation (z_0.975 + z_0.8) sd / sqrt(n) = 2.8016 / 100
    assert mde_paired(1.0, 10000) == pytest.approx(2.8016 / 100, rel=1e-3)
    assert mde_paired(2.0, 10) == pytest.approx(2 * mde_paired(1.0, 10))  # scales with sd
    assert mde_paired(1.0, 2) > 10  # one degree of freedom: hopeless
    assert math.isnan(mde_paired(1.0, 1))


# Differences strategy - scratch per seed (scratch SWD-AUC 10 in every seed), margin 1.
TABLE = {
    "better": [-3, -2, -4, -3, -3],  # mean -3, sd sqrt(0.5): t = -9.487
    "worse": [2, 3, 2.5, 3, 2.5],  # mean 2.6, sd sqrt(0.175): t = 13.90
    "equivalent": [0.1, -0.1, 0.05, -0.05, 0.0],  # mean 0, 90% CI well inside +-1
    "inconclusive": [2, -2, 1, -1, 0.5],  # mean 0.1, CI -1.9..2.1: neither
    "single": [-5],  # one pair only
}


@pytest.fixture
def comparisons():
    values = {}
    for strategy, diffs in TABLE.items():
        for seed, d in enumerate(diffs):
            values[("scratch", "stem", seed)] = 10.0
            values[(strategy, "stem", seed)] = 10.0 + d
    values[("cyclegan", "full", 0)] = 3.0  # another growth mode: its own family
    return {c.strategy: c for c in compare_to_baseline(values, metric="eval/swd", margin=1.0)}


def test_one_word_verdicts(comparisons):
    assert {s: c.verdict for s, c in comparisons.items() if c.grow == "stem"} == {
        "better": "better",
        "worse": "worse",
        "equivalent": "equivalent",
        "inconclusive": "inconclusive",
        "single": "n/a",
    }
    assert "1 complete pair" in comparisons["single"].reason


def test_holm_family_is_the_strategies_of_one_growth_mode(comparisons):
    # four p values in the stem family (single has none): better's is the 2nd smallest -> x3
    better = comparisons["better"]
    assert better.test.p == pytest.approx(t4_two_sided(-3 / math.sqrt(0.5 / 5)))
    assert better.p_holm == pytest.approx(3 * better.test.p)
    worse = comparisons["worse"]
    assert worse.p_holm == pytest.approx(4 * t4_two_sided(2.6 / math.sqrt(0.175 / 5)))
    assert comparisons["inconclusive"].p_holm == 1.0
    assert comparisons["cyclegan"].grow == "full" and comparisons["cyclegan"].verdict == "n/a"


def test_relative_margin_is_a_share_of_scratch_mean():
    values = {("scratch", "stem", s): 20.0 for s in range(3)}
    values |= {("x", "stem", s): 20.0 + d for s, d in enumerate([0.1, -0.1, 0.0])}
    (c,) = compare_to_baseline(values, metric="eval/swd", margin="10%")
    assert c.margin == pytest.approx(2.0) and c.verdict == "equivalent"
    (c,) = compare_to_baseline(values, metric="eval/swd", margin="0.1%")
    assert c.margin == pytest.approx(0.02) and c.verdict == "inconclusive"


def test_higher_is_better_metrics_turn_the_verdict():
    values = {("scratch", "stem", s): 0.5 for s in range(3)}
    values |= {("x", "stem", s): 0.5 + d for s, d in enumerate([0.2, 0.3, 0.25])}
    (c,) = compare_to_baseline(values, metric="eval/recall", margin=0.01)
    assert c.verdict == "better"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweeps_prespecify_endpoints_that_wandb_schema_would_refuse(path):
    from gan_init.experiment.sweep import load_endpoints, load_sweep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps

    raw = yaml.safe_load(path.read_text())
    violations = sweeps.schema_violations_from_proposed_config(raw)
    assert any("endpoints" in v for v in violations)  # why load_sweep takes it out
    assert "endpoints" not in load_sweep(path)
    spec = load_endpoints(path)
    # One resolution's endpoint; the map's sweeps carry an absolute margin (fixed by the pilot).
    assert str(spec.primary) == "final(eval/full/swd_mean)" and spec.alpha == 0.05
    # 2 x the real-vs-real SD of each dimensionality's pilot (docs/results/pilot.md)
    margins = {"map_2d_": 6.0, "map_3d_": 8.5}
    assert spec.margin == margins.get(path.name[:7], "10%")
    assert spec.source == str(path)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"primary": "area(eval/swd)", "margin": 1}, "auc\\(eval/<metric>\\)"),
        ({"primary": "auc(eval/msssim_fake)", "margin": 1}, "no better/worse direction"),
        ({"primary": "auc(eval/swd)"}, "margin are required"),
        ({"primary": "auc(eval/swd)", "margin": "ten"}, "percentage"),
        ({"primary": "auc(eval/swd)", "margin": 1, "alpah": 0.1}, "unknown key"),
    ],
)
def test_bad_endpoint_spec_names_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        EndpointSpec.from_dict(raw, "s.yaml: endpoints")


def test_spec_round_trips_through_the_state_file_form():
    again = EndpointSpec.from_dict(DEFAULT_SPEC.to_dict(), "state")
    assert again.to_dict() == DEFAULT_SPEC.to_dict()


FAKE_RUN = """
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
run_dir = os.path.join(os.environ["GAN_INIT_RUNS_DIR"], "2d", "seed" + args["seed"])
os.makedirs(run_dir, exist_ok=True)
summary = {"status": "finished", "run_dir": run_dir, "metrics": {}}
summary["sweep_run"] = os.environ["GAN_INIT_SWEEP_RUN"]
json.dump(summary, open(os.path.join(run_dir, "summary.json"), "w"))
"""


def _sweep_with_endpoints(tmp_path: Path, endpoints: dict) -> Path:
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    sweep = {
        "method": "grid",
        "parameters": {"seed": {"values": [0, 1]}},
        "command": ["${interpreter}", str(tmp_path / "fake_run.py"), "${args}"],
        "endpoints": endpoints,
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_the_sweep_records_its_endpoints_for_the_report(tmp_path):
    from gan_init.experiment.report import sweep_specs
    from gan_init.experiment.sweep import run_sweep

    endpoints = {"primary": "auc(eval/swd)", "secondary": ["final(eval/swd)"], "margin": 0.5}
    path = _sweep_with_endpoints(tmp_path, endpoints)
    run_sweep(path, runs_dir=tmp_path / "runs")
    state = yaml.safe_load((tmp_path / "runs" / "sweeps" / "mine.json").read_text())
    assert state["sweep_file"] == str(path) and state["endpoints"]["margin"] == 0.5
    specs = sweep_specs(tmp_path / "runs")
    assert set(specs) == {("2d", "seed0"), ("2d", "seed1")}
    assert specs[("2d", "seed0")].margin == 0.5 and specs[("2d", "seed0")].source == str(path)


def test_a_bad_endpoint_spec_stops_the_sweep_before_any_run(tmp_path):
    from gan_init.experiment.sweep import run_sweep

    path = _sweep_with_endpoints(tmp_path, {"primary": "auc(eval/swd)", "margin": -1})
    with pytest.raises(ValueError, match=r"mine.yaml: endpoints.margin: expected a positive"):
        run_sweep(path, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs" / "sweeps" / "mine.json").exists()


def test_mcnemar_exact_counts_discordant_pairs_and_matches_scipy():
    from scipy import stats as sps

    from gan_init.experiment.stats import mcnemar_exact

    arm = [True, True, True, True, True, False, False, True]
    base = [False, False, False, False, False, False, True, True]
    b, c, p = mcnemar_exact(arm, base)
    assert (b, c) == (5, 1)  # the last pair failed in both: concordant, no information
    assert p == pytest.approx(sps.binomtest(5, 6, 0.5).pvalue, abs=1e-13)
    assert p == pytest.approx(2 * (1 + 6) / 2**6)  # by hand: 2 * P(X <= 1), X ~ Bin(6, 1/2)
    assert mcnemar_exact([False] * 4, [False] * 4) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="equal-length"):
        mcnemar_exact([True], [True, False])


def test_paired_variance_test_is_pitman_morgan():
    import numpy as np
    from scipy import stats as sps

    from gan_init.experiment.stats import paired_variance_test

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 12)
    y = 0.5 * x + rng.normal(0, 4, 12)  # paired, much wider
    sd_x, sd_y, p = paired_variance_test(x, y)
    assert (sd_x, sd_y) == pytest.approx((x.std(ddof=1), y.std(ddof=1)))
    # By hand: r of (x + y, x - y); t = r sqrt((n - 2) / (1 - r^2)); two-sided, n - 2 df.
    r = np.corrcoef(x + y, x - y)[0, 1]
    t = r * np.sqrt(10 / (1 - r**2))
    assert p == pytest.approx(2 * sps.t.sf(abs(t), 10), abs=1e-12)
    assert p < 0.05
    assert np.isnan(paired_variance_test(x, x)[2])  # a constant difference: undefined
    assert np.isnan(paired_variance_test([1.0, 2.0], [2.0, 3.0])[2])
