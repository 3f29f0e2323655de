"""Tests for chainzrule.fight.verdicts: the v2 verdict rules on constructed data."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainzrule.fight.stats import (
    VERDICTS,
    corrected_resampled_ttest,
    holm_bonferroni,
    noninferiority_test,
    paired_tests,
    summarize,
    tost,
    verdict_compare,
    verdict_level,
)
from chainzrule.fight.verdicts import (
    NOT_COMPARABLE,
    strict_end,
    verdict_equivalence,
    verdict_interval,
    verdict_noninferiority,
    verdict_range,
    verdict_superiority,
)

CENTRED = np.array([-0.002, 0.001, 0.0, 0.002, -0.001])  # mean exactly 0, sd 0.00158
BASE = np.full(5, 0.970)


def test_not_comparable_is_a_fourth_label():
    assert NOT_COMPARABLE == "not comparable" and NOT_COMPARABLE not in VERDICTS


# ----------------------------------------------------------------------------------------------
# strict end and level claims on an interval
# ----------------------------------------------------------------------------------------------


def test_strict_end():
    assert strict_end([1.01, 1.02], "lower") == 1.01  # "tau as low as 1.01-1.02": judged at 1.01
    assert strict_end((0.96, 0.97), "higher") == 0.97
    assert strict_end([1.0, 1.0], "higher") == 1.0
    with pytest.raises(ValueError, match="low <= high"):
        strict_end([1.02, 1.01], "lower")
    with pytest.raises(ValueError, match="claimed range"):
        strict_end([1.0], "lower")
    with pytest.raises(ValueError, match="direction"):
        strict_end([1.0, 2.0], "up")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=8),
    st.floats(-12, 12),
    st.sampled_from(["higher", "lower"]),
    st.sampled_from([0.0, 0.5]),
)
def test_verdict_interval_is_verdict_level(values, claimed, direction, tol):
    s = summarize(values)
    expected = verdict_level(claimed, values, direction, tolerance=tol)
    assert verdict_interval(s["ci_low"], s["ci_high"], claimed, direction, tol) == expected


def test_verdict_interval_errors():
    with pytest.raises(ValueError, match="tolerance >= 0"):
        verdict_interval(0.0, 1.0, 0.5, "higher", -1.0)
    with pytest.raises(ValueError, match="direction"):
        verdict_interval(0.0, 1.0, 0.5, "more")
    assert verdict_interval(float("nan"), float("nan"), 0.5) == "inconclusive"


# ----------------------------------------------------------------------------------------------
# non-inferiority
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shift, expected",
    [(0.0, "supported"),            # as accurate as the baseline: non-inferior within 0.5 points
     (-0.02, "not supported"),      # 2 points worse: the interval lies below -0.5 points
     (-0.005, "inconclusive"),      # 0.5 points worse on average: the interval contains -δ
     (+0.01, "supported")],         # better is non-inferior too
)
def test_noninferiority_verdicts(shift, expected):
    r = noninferiority_test(BASE + shift + CENTRED, BASE, margin=0.005)
    assert verdict_noninferiority(r) == expected


def test_noninferiority_verdict_lower_is_better():
    b = np.full(5, 10.0)
    for shift, expected in ((0.0, "supported"), (2.0, "not supported"), (0.5, "inconclusive")):
        r = noninferiority_test(b + shift + CENTRED * 100, b, 0.5, direction="lower")
        assert verdict_noninferiority(r) == expected


def test_noninferiority_verdict_p_adjusted_and_one_pair():
    r = noninferiority_test(BASE + CENTRED, BASE, margin=0.005)  # p = 0.00106
    assert verdict_noninferiority(r, p_adjusted=0.2) == "inconclusive"  # Holm can take support away
    assert verdict_noninferiority(r, p_adjusted=float("nan")) == "inconclusive"
    one = noninferiority_test([0.97], [0.96], margin=0.005)
    assert verdict_noninferiority(one) == "inconclusive"
    with pytest.raises(ValueError, match="p_adjusted"):
        verdict_noninferiority(r, p_adjusted=1.5)
    with pytest.raises(ValueError, match="missing"):
        verdict_noninferiority({"p_value": 0.01})


def test_noninferiority_supported_iff_interval_clears_bound():
    for shift in np.linspace(-0.01, 0.0, 41):
        r = noninferiority_test(BASE + shift + CENTRED, BASE, margin=0.005)
        assert (verdict_noninferiority(r) == "supported") == (r["ci_low"] >= -0.005)


# ----------------------------------------------------------------------------------------------
# equivalence
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "centre, expected",
    [(1.015, "supported"), (1.0195, "inconclusive"), (1.0095, "inconclusive"), (1.08, "not supported"),
     (0.95, "not supported")],
)
def test_equivalence_verdicts(centre, expected):
    assert verdict_equivalence(tost(centre + CENTRED, 1.01, 1.02)) == expected


def test_equivalence_verdict_p_adjusted():
    r = tost(1.015 + CENTRED, 1.01, 1.02)
    assert verdict_equivalence(r) == "supported"
    assert verdict_equivalence(r, p_adjusted=0.06) == "inconclusive"
    with pytest.raises(ValueError, match="TOST"):
        verdict_equivalence({"p_value": 0.01, "alpha": 0.05})


# ----------------------------------------------------------------------------------------------
# superiority on corrected tests
# ----------------------------------------------------------------------------------------------


def test_superiority_equals_verdict_compare_in_the_plain_limit():
    rng = np.random.default_rng(5)
    for _ in range(30):
        a, b = rng.normal(0.9, 0.01, 6), rng.normal(0.9 + rng.normal(0, 0.01), 0.01, 6)
        for direction in ("higher", "lower"):
            p = paired_tests(a, b)["t_p"]
            r = corrected_resampled_ttest(a - b, n_train=1e15, n_test=1)
            assert verdict_superiority(r, p, direction) == verdict_compare(a, b, p, direction)


def test_superiority_corrected_is_more_cautious():
    d = [0.01, 0.03, 0.0, 0.02, 0.015, 0.025, 0.005, 0.02, 0.01, 0.015]  # 2 x 5-fold
    plain = corrected_resampled_ttest(d, n_train=1e15, n_test=1)
    cv = corrected_resampled_ttest(d, n_train=614, n_test=154)
    assert verdict_superiority(plain) == "supported"
    assert cv["p_value"] > plain["p_value"]
    assert verdict_superiority(cv, p_adjusted=0.3) == "inconclusive"
    with pytest.raises(ValueError, match="alpha"):
        verdict_superiority(cv, alpha=2.0)


# ----------------------------------------------------------------------------------------------
# range claims end to end
# ----------------------------------------------------------------------------------------------


def test_verdict_range_rules():
    x = list(1.015 + CENTRED)  # CR's tau, well inside the claimed 1.01-1.02
    eq = verdict_range(x, [1.01, 1.02], "lower")
    assert eq["verdict"] == "supported" and eq["rule"] == "equivalence" and eq["bounds"] == [1.01, 1.02]
    se = verdict_range(x, [1.01, 1.02], "lower", rule="strict-end")
    assert se["verdict"] == "not supported" and se["target"] == 1.01  # v1's lenient end (1.02) said supported
    assert verdict_level(1.02, x, "lower") == "supported"
    assert se["ci_low"] == pytest.approx(summarize(x)["ci_low"])
    # ReLU's tau of about 1.08 against its claimed 1.07-1.09, and a tolerance that widens the range
    relu = list(1.0895 + CENTRED)
    assert verdict_range(relu, [1.07, 1.09], "lower")["verdict"] == "inconclusive"
    assert verdict_range(relu, [1.07, 1.09], "lower", tolerance=0.005)["verdict"] == "supported"


def test_verdict_range_cv_uses_corrected_interval():
    x = [0.850, 0.862, 0.841, 0.870, 0.855, 0.858, 0.847, 0.866, 0.852, 0.859]  # 2 x 5-fold accuracy
    # mean 0.856: plain 95% interval [0.8497, 0.8623]; corrected [0.8441, 0.8679] (1.87x: sqrt(1 + 10·154/614))
    plain = verdict_range(x, [0.80, 0.845], "higher", rule="strict-end")
    cv = verdict_range(x, [0.80, 0.845], "higher", rule="strict-end", n_train=614, n_test=154)
    assert plain["verdict"] == "supported" and cv["verdict"] == "inconclusive"
    ref = corrected_resampled_ttest(x, 614, 154, null=0.845, confidence=0.95)
    assert (cv["ci_low"], cv["p_value"]) == (pytest.approx(ref["ci_low"]), pytest.approx(ref["p_value"]))
    eq = verdict_range(x, [0.84, 0.87], "higher", n_train=614, n_test=154)
    assert eq["p_value"] == pytest.approx(tost(x, 0.84, 0.87, n_train=614, n_test=154)["p_value"])


def test_verdict_range_errors():
    with pytest.raises(ValueError, match="rule"):
        verdict_range([1.0, 1.1], [1.0, 1.2], rule="lenient")
    with pytest.raises(ValueError, match="positive width"):
        verdict_range([1.0, 1.1], [1.0, 1.0])
    assert verdict_range([1.0, 1.1], [1.0, 1.0], tolerance=0.2)["bounds"] == [0.8, 1.2]
    with pytest.raises(ValueError, match="tolerance"):
        verdict_range([1.0, 1.1], [1.0, 1.2], tolerance=-0.1)


def test_holm_family_of_mixed_claims():
    tests = {
        "ni": noninferiority_test(BASE + CENTRED, BASE, margin=0.005),
        "eq": tost(1.015 + CENTRED, 1.01, 1.02),
        "weak_ni": noninferiority_test(BASE - 0.0033 + CENTRED, BASE, margin=0.005),  # t = 2.40
        "edge_ni": noninferiority_test(BASE - 0.005 + CENTRED, BASE, margin=0.005),  # p = 0.5
    }
    holm = holm_bonferroni({k: t["p_value"] for k, t in tests.items()})
    assert verdict_noninferiority(tests["ni"], holm.adjusted["ni"]) == "supported"
    assert verdict_equivalence(tests["eq"], holm.adjusted["eq"]) == "supported"
    # alone it would pass at 0.05; Holm over four (x2 at its rank) makes it inconclusive
    assert tests["weak_ni"]["p_value"] < 0.05 < holm.adjusted["weak_ni"]
    assert verdict_noninferiority(tests["weak_ni"], holm.adjusted["weak_ni"]) == "inconclusive"
    assert verdict_noninferiority(tests["edge_ni"], holm.adjusted["edge_ni"]) == "inconclusive"
    assert not math.isnan(holm.adjusted["weak_ni"])


def test_param_ratio_claim_read_from_its_bootstrap_interval():
    # "15.5x fewer parameters" against bootstrap intervals, censored bounds (0, inf) included
    assert verdict_interval(16.0, 40.0, 15.5) == "supported"
    assert verdict_interval(2.0, 6.0, 15.5) == "not supported"
    assert verdict_interval(0.0, math.inf, 15.5) == "inconclusive"  # sweep too short to tell
    assert verdict_interval(20.0, math.inf, 15.5) == "supported"
