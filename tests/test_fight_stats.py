"""Tests for chainzrule.fight.stats: summaries, paired tests, Holm, verdicts, ratio reduction."""

import math
import warnings

import numpy as np
import pytest

from chainzrule.errors import ConfigError
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as st_scipy

from chainzrule.fight.stats import (
    VERDICTS,
    HolmResult,
    holm_bonferroni,
    one_sample_tests,
    paired_tests,
    ratio_reduction,
    summarize,
    verdict_compare,
    verdict_level,
)

# ----------------------------------------------------------------------------------------------
# summarize
# ----------------------------------------------------------------------------------------------


def test_summarize_hand_computed():
    s = summarize([2.0, 4.0, 6.0, 8.0])
    assert s["mean"] == 5.0
    assert s["std"] == pytest.approx(math.sqrt(20 / 3))
    assert s["n"] == 4
    half = 3.182446305284263 * math.sqrt(20 / 3) / 2  # t_{0.975, 3} from tables
    assert s["ci_low"] == pytest.approx(5 - half)
    assert s["ci_high"] == pytest.approx(5 + half)
    assert list(s) == ["mean", "std", "n", "ci_low", "ci_high"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30), st.sampled_from([0.9, 0.95, 0.99]))
def test_summarize_matches_scipy_interval(values, conf):
    s = summarize(values, confidence=conf)
    x = np.asarray(values)
    sem = st_scipy.sem(x)
    assert s["std"] == pytest.approx(np.std(x, ddof=1), rel=1e-9, abs=1e-9)
    if sem > 0:
        lo, hi = st_scipy.t.interval(conf, len(x) - 1, loc=x.mean(), scale=sem)
        assert s["ci_low"] == pytest.approx(lo, rel=1e-9, abs=1e-6)
        assert s["ci_high"] == pytest.approx(hi, rel=1e-9, abs=1e-6)
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_summarize_single_value_is_nan():
    s = summarize([3.5])
    assert s["mean"] == 3.5 and s["n"] == 1
    assert math.isnan(s["std"]) and math.isnan(s["ci_low"]) and math.isnan(s["ci_high"])


def test_summarize_zero_spread():
    s = summarize([1.0, 1.0, 1.0])
    assert s["std"] == 0.0 and s["ci_low"] == 1.0 and s["ci_high"] == 1.0


def test_summarize_errors():
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        summarize([[1.0, 2.0]])
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=95)


def test_summarize_accepts_tensors():
    torch = pytest.importorskip("torch")
    assert summarize(torch.tensor([1.0, 3.0]))["mean"] == 2.0


# ----------------------------------------------------------------------------------------------
# paired tests (scipy is the oracle)
# ----------------------------------------------------------------------------------------------


# few examples: with ties, scipy's exact Wilcoxon enumerates 2^n sign flips (n <= 13)
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=2, max_size=25),
    st.sampled_from(["two-sided", "greater", "less"]),
)
def test_paired_tests_match_scipy(pairs, alternative):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    r = paired_tests(a, b, alternative=alternative)
    d = np.asarray(a) - np.asarray(b)
    assert r["n"] == len(a)
    assert r["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    if np.all(d == 0):
        assert r["t_p"] == 1.0 and r["wilcoxon_p"] == 1.0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision-loss warning for near-constant d
        t = st_scipy.ttest_rel(a, b, alternative=alternative)
        w = st_scipy.wilcoxon(a, b, alternative=alternative)
    np.testing.assert_allclose(r["t_stat"], t.statistic, rtol=1e-9)
    np.testing.assert_allclose(r["t_p"], t.pvalue, rtol=1e-9, atol=1e-300)
    assert r["wilcoxon_stat"] == pytest.approx(w.statistic)
    assert r["wilcoxon_p"] == pytest.approx(w.pvalue, rel=1e-9)


def test_paired_tests_hand_computed():
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 / (1/sqrt 3) = 2 sqrt 3; all positive ranks
    r = paired_tests([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert r["mean_diff"] == 2.0
    assert r["t_stat"] == pytest.approx(2 * math.sqrt(3))
    # df = 2: two-sided p = 1 - t / sqrt(t^2 + 2)
    assert r["t_p"] == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14))
    # exact Wilcoxon, n = 3, all ranks positive: two-sided p = 2 / 2^3
    assert r["wilcoxon_stat"] == 0.0
    assert r["wilcoxon_p"] == pytest.approx(0.25)


def test_wilcoxon_exact_five_seeds_floor():
    r = paired_tests([1.0, 2, 3, 4, 5], [0.0, 0, 0, 0, 0])
    assert r["wilcoxon_p"] == pytest.approx(2 / 32)


def test_paired_tests_all_zero_differences():
    r = paired_tests([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert r == {"mean_diff": 0.0, "t_stat": 0.0, "t_p": 1.0, "wilcoxon_stat": 0.0, "wilcoxon_p": 1.0, "n": 3}


def test_paired_tests_constant_nonzero_differences():
    r = paired_tests([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert r["t_stat"] == math.inf and r["t_p"] == 0.0
    assert r["wilcoxon_p"] == pytest.approx(0.25)


def test_paired_tests_single_pair():
    r = paired_tests([1.0], [0.5])
    assert r["mean_diff"] == 0.5 and r["n"] == 1
    assert all(math.isnan(r[k]) for k in ("t_stat", "t_p", "wilcoxon_stat", "wilcoxon_p"))


def test_paired_tests_errors():
    with pytest.raises(ValueError, match="equal length, got 3 and 2"):
        paired_tests([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least one"):
        paired_tests([], [])
    with pytest.raises(ValueError, match="alternative"):
        paired_tests([1, 2], [0, 1], alternative="bigger")


def test_one_sample_tests_match_scipy():
    x = [96.2, 96.5, 96.4, 96.3, 96.6]
    r = one_sample_tests(x, 96.38)
    t = st_scipy.ttest_1samp(x, 96.38)
    assert r["t_p"] == pytest.approx(t.pvalue)
    assert r["mean_diff"] == pytest.approx(np.mean(x) - 96.38)
    with pytest.raises(ValueError, match="finite"):
        one_sample_tests(x, float("nan"))


# ----------------------------------------------------------------------------------------------
# Holm–Bonferroni (hand derivations, no statsmodels)
# ----------------------------------------------------------------------------------------------


def test_holm_hand_computed_sequence():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 -> max 0.06)
    res = holm_bonferroni([0.01, 0.04, 0.03, 0.005])
    assert isinstance(res, HolmResult)
    np.testing.assert_allclose(res.adjusted, [0.03, 0.06, 0.06, 0.02])
    assert res.reject == [True, False, False, True]
    adjusted, reject = res  # unpacks
    assert reject == res.reject


def test_holm_hand_computed_mapping_keeps_keys_and_order():
    p = {"cr_vs_mlp": 0.02, "cr_vs_kan": 0.5, "cr_vs_gelu": 0.001}
    res = holm_bonferroni(p, alpha=0.05)
    assert list(res.adjusted) == list(p) and list(res.reject) == list(p)
    # sorted: 0.001 x3 = 0.003; 0.02 x2 = 0.04; 0.5 x1 = 0.5
    assert res.adjusted == pytest.approx({"cr_vs_mlp": 0.04, "cr_vs_kan": 0.5, "cr_vs_gelu": 0.003})
    assert res.reject == {"cr_vs_mlp": True, "cr_vs_kan": False, "cr_vs_gelu": True}


def test_holm_cap_and_stop():
    res = holm_bonferroni([0.4, 0.6, 0.01])
    # 0.01 x3 = 0.03; 0.4 x2 = 0.8; 0.6 x1 -> max 0.8
    np.testing.assert_allclose(res.adjusted, [0.8, 0.8, 0.03])
    res = holm_bonferroni([0.6, 0.7])
    np.testing.assert_allclose(res.adjusted, [1.0, 1.0])  # capped
    res = holm_bonferroni([0.02, 0.03], alpha=0.05)
    np.testing.assert_allclose(res.adjusted, [0.04, 0.04])
    assert res.reject == [True, True]
    # step-down stops at the first acceptance: 0.04 <= alpha/1, but 0.03 x2 = 0.06 failed first
    res = holm_bonferroni([0.03, 0.001, 0.04], alpha=0.05)
    np.testing.assert_allclose(res.adjusted, [0.06, 0.003, 0.06])
    assert res.reject == [False, True, False]


def test_holm_single_and_empty_and_alpha_boundary():
    assert holm_bonferroni([0.05]).adjusted == [0.05]
    assert holm_bonferroni([0.05]).reject == [True]  # p <= alpha rejects
    assert holm_bonferroni([]) == HolmResult([], [])
    assert holm_bonferroni({}) == HolmResult({}, {})


def test_holm_nan_counts_but_never_rejects():
    res = holm_bonferroni([0.01, float("nan")])
    assert res.adjusted[0] == pytest.approx(0.02)  # m = 2
    assert math.isnan(res.adjusted[1]) and res.reject == [True, False]


def test_holm_ties_keep_order():
    res = holm_bonferroni([0.02, 0.02])
    np.testing.assert_allclose(res.adjusted, [0.04, 0.04])


def test_holm_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1.5"):
        holm_bonferroni([0.1, 1.5])
    with pytest.raises(ValueError, match="alpha"):
        holm_bonferroni([0.1], alpha=0.0)
    with pytest.raises(ValueError, match="mapping or a sequence"):
        holm_bonferroni(0.1)


def _holm_sequential(p, alpha):
    """Holm's procedure as written in textbooks: step down through the sorted p-values."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    reject = [False] * m
    for rank, i in enumerate(order):
        if p[i] <= alpha / (m - rank):
            reject[i] = True
        else:
            break
    return reject


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=12),
    st.sampled_from([0.01, 0.05, 0.1]),
)
def test_holm_properties(p, alpha):
    res = holm_bonferroni(p, alpha=alpha)
    adj = np.asarray(res.adjusted)
    # adjusted >= raw, capped at 1
    assert np.all(adj >= np.asarray(p) - 1e-15) and np.all(adj <= 1.0)
    # monotone in the order of the raw p-values
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)
    # same decisions as the sequential procedure (away from floating-point ties at the boundary)
    if all(abs(pi * (len(p) - r) - alpha) > 1e-12 for r in range(len(p)) for pi in p):
        assert res.reject == _holm_sequential(p, alpha)


# ----------------------------------------------------------------------------------------------
# verdicts
# ----------------------------------------------------------------------------------------------


def test_verdicts_constant():
    assert VERDICTS == ("supported", "not supported", "inconclusive")


def test_verdict_level_higher():
    # CI of [1, 2, 3] at 95%: 2 ± 2.4841 -> [-0.484, 4.484]
    x = [1.0, 2.0, 3.0]
    assert verdict_level(-0.5, x, "higher") == "supported"
    assert verdict_level(-0.4, x, "higher") == "inconclusive"
    assert verdict_level(4.4, x, "higher") == "inconclusive"
    assert verdict_level(4.5, x, "higher") == "not supported"
    assert verdict_level(4.5, x, "higher", tolerance=0.1) == "inconclusive"
    assert verdict_level(0.0, x, "higher", tolerance=0.5) == "supported"


def test_verdict_level_lower():
    x = [1.0, 2.0, 3.0]
    assert verdict_level(4.5, x, "lower") == "supported"
    assert verdict_level(-0.5, x, "lower") == "not supported"
    assert verdict_level(2.0, x, "lower") == "inconclusive"
    assert verdict_level(4.0, x, "lower", tolerance=0.5) == "supported"


def test_verdict_level_boundaries_and_degenerate():
    # zero spread: the interval is the point itself; bound included for "supported"
    assert verdict_level(1.0, [1.0, 1.0], "higher") == "supported"
    assert verdict_level(1.0, [1.0, 1.0], "lower") == "supported"
    assert verdict_level(1.1, [1.0, 1.0], "higher") == "not supported"
    # one seed: never decisive
    assert verdict_level(0.0, [5.0], "higher") == "inconclusive"


def test_verdict_level_alpha_changes_interval():
    x = [1.0, 2.0, 3.0, 2.5, 1.5]
    s90 = summarize(x, confidence=0.90)
    just_below_90 = s90["ci_low"] - 1e-9
    assert verdict_level(just_below_90, x, "higher", alpha=0.10) == "supported"
    assert verdict_level(just_below_90, x, "higher", alpha=0.05) == "inconclusive"


def test_verdict_level_errors():
    with pytest.raises(ValueError, match="direction"):
        verdict_level(1.0, [1.0, 2.0], "up")
    with pytest.raises(ValueError, match="tolerance"):
        verdict_level(1.0, [1.0, 2.0], "higher", tolerance=-1.0)
    with pytest.raises(ValueError, match="at least one"):
        verdict_level(1.0, [], "higher")


def test_verdict_compare_cases():
    a = [0.90, 0.91, 0.92, 0.93]
    b = [0.85, 0.86, 0.88, 0.87]
    assert verdict_compare(a, b, 0.01, "higher") == "supported"
    assert verdict_compare(a, b, 0.05, "higher") == "supported"  # p <= alpha
    assert verdict_compare(a, b, 0.2, "higher") == "inconclusive"  # favours A, not significant
    # favours B: the CI of d excludes 0 -> not supported even with a large adjusted p
    assert verdict_compare(b, a, 0.9, "higher") == "not supported"
    # "lower is better" flips the roles
    assert verdict_compare(b, a, 0.01, "lower") == "supported"
    assert verdict_compare(a, b, 0.9, "lower") == "not supported"


def test_verdict_compare_noisy_wrong_direction():
    a = [1.0, 3.0, 0.0, 1.5]
    b = [2.0, 1.0, 2.0, 1.0]  # d = [-1, 2, -2, 0.5]: mean -0.125, CI wide
    assert verdict_compare(a, b, 0.8, "higher") == "inconclusive"
    assert verdict_compare(a, b, 0.01, "higher") == "not supported"  # significant for B
    assert verdict_compare(a, b, 0.01, "lower") == "supported"


def test_verdict_compare_ties_and_nan():
    assert verdict_compare([1.0, 2.0], [1.0, 2.0], 1.0) == "inconclusive"
    assert verdict_compare([0.9], [0.8], float("nan")) == "inconclusive"
    # nan p but a decisive interval against A
    assert verdict_compare([0.80, 0.81, 0.82], [0.85, 0.86, 0.88], float("nan")) == "not supported"


def test_verdict_compare_errors():
    with pytest.raises(ValueError, match="equal length"):
        verdict_compare([1.0, 2.0], [1.0], 0.01)
    with pytest.raises(ValueError, match="p_adjusted"):
        verdict_compare([1.0, 2.0], [1.0, 1.0], 1.2)
    with pytest.raises(ValueError, match="direction"):
        verdict_compare([1.0, 2.0], [1.0, 1.0], 0.01, "better")


def test_compare_pipeline_with_holm():
    rng = np.random.default_rng(0)
    base = rng.normal(0.9, 0.01, 5)
    contenders = {"big_gain": base + 0.05 + rng.normal(0, 0.002, 5), "no_gain": base + rng.normal(0, 0.01, 5)}
    pvals = {k: paired_tests(v, base)["t_p"] for k, v in contenders.items()}
    holm = holm_bonferroni(pvals)
    assert verdict_compare(contenders["big_gain"], base, holm.adjusted["big_gain"]) == "supported"
    assert verdict_compare(contenders["no_gain"], base, holm.adjusted["no_gain"]) in VERDICTS


# ----------------------------------------------------------------------------------------------
# ratio reduction
# ----------------------------------------------------------------------------------------------


def test_ratio_reduction_hand_computed():
    r = ratio_reduction([0.5, 0.9, 1.6], [1.0, 1.0, 2.0])
    assert r["per_seed"] == pytest.approx([0.5, 0.1, 0.2])
    assert r["mean"] == pytest.approx(0.8 / 3)
    assert r["summary"]["n"] == 3
    assert r["summary"]["mean"] == pytest.approx(r["mean"])
    # paired by seed: not 1 - mean(cr)/mean(base)
    assert r["mean"] != pytest.approx(1 - np.mean([0.5, 0.9, 1.6]) / np.mean([1.0, 1.0, 2.0]))


def test_ratio_reduction_negative_when_worse():
    assert ratio_reduction([2.0], [1.0])["mean"] == -1.0


def test_ratio_reduction_errors():
    with pytest.raises(ValueError, match="non-zero baseline"):
        ratio_reduction([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="equal length"):
        ratio_reduction([1.0, 2.0], [1.0])


# ==============================================================================================
# v2 protocol building blocks
# ==============================================================================================

from itertools import product  # noqa: E402

from chainzrule.fight.stats import (  # noqa: E402
    compare_failure_rates,
    corrected_resampled_ttest,
    edge_of_range,
    expected_max_curve,
    failure_rate,
    noninferiority_test,
    param_ratio_bootstrap,
    params_at_accuracy,
    range_position,
    tost,
    tost_paired,
)

# ----------------------------------------------------------------------------------------------
# corrected resampled t-test (Nadeau & Bengio 2003)
# ----------------------------------------------------------------------------------------------


def test_corrected_ttest_hand_computation():
    # one 5-fold CV: J = 5 splits, 400 train / 100 test examples each
    d = [0.02, 0.01, 0.03, 0.00, 0.04]
    # mean = 0.10 / 5 = 0.02
    # deviations 0, -0.01, 0.01, -0.02, 0.02 -> sum of squares 0.0010 -> s^2 = 0.0010 / 4 = 0.00025
    # corrected variance of the mean = (1/5 + 100/400) * 0.00025 = 0.45 * 0.00025 = 0.0001125
    # t = 0.02 / sqrt(0.0001125) = 0.02 / 0.0106066 = 1.885618, df = 4
    # df = 4 in closed form: p = 1 - sin(th) (1 + cos(th)^2 / 2), sin(th) = t / sqrt(t^2 + 4)
    t = 0.02 / math.sqrt(0.0001125)
    p = 1 - t / math.sqrt(t**2 + 4) * (1 + 2 / (t**2 + 4))
    half = 2.7764451051977987 * math.sqrt(0.0001125)  # t_{0.975, 4} from tables
    r = corrected_resampled_ttest(d, n_train=400, n_test=100)
    assert r["mean_diff"] == pytest.approx(0.02)
    assert r["variance"] == pytest.approx(0.0001125)
    assert r["statistic"] == pytest.approx(1.885618083, rel=1e-9) == pytest.approx(t)
    assert r["df"] == 4 and r["n"] == 5
    assert r["p_value"] == pytest.approx(0.1324189, rel=1e-6) == pytest.approx(p)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    assert list(r) == ["mean_diff", "statistic", "p_value", "variance", "df", "ci_low", "ci_high", "n"]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_corrected_ttest_is_plain_paired_t_when_test_share_vanishes(alternative):
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.02, 10), rng.normal(0.79, 0.02, 10)
    r = corrected_resampled_ttest(a - b, n_train=1e15, n_test=1, alternative=alternative)
    ref = st_scipy.ttest_rel(a, b, alternative=alternative)
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    ci = st_scipy.ttest_rel(a, b).confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_corrected_ttest_widens_and_sides_add_up():
    d = [0.5, 1.5, 1.0, 2.0, 0.0, 1.0, 1.5, 0.5, 1.0, 1.0]  # 2 x 5-fold
    plain = paired_tests(d, [0.0] * 10)
    r = corrected_resampled_ttest(d, n_train=80, n_test=20)
    assert r["p_value"] > plain["t_p"] and abs(r["statistic"]) < abs(plain["t_stat"])
    g = corrected_resampled_ttest(d, 80, 20, alternative="greater")["p_value"]
    le = corrected_resampled_ttest(d, 80, 20, alternative="less")["p_value"]
    assert g + le == pytest.approx(1.0) and r["p_value"] == pytest.approx(2 * min(g, le))


def test_corrected_ttest_null_shifts():
    x = [0.84, 0.86, 0.85, 0.83, 0.87]
    r = corrected_resampled_ttest(x, 600, 150, null=0.8571)
    s = corrected_resampled_ttest([v - 0.8571 for v in x], 600, 150)
    assert r["statistic"] == pytest.approx(s["statistic"]) and r["p_value"] == pytest.approx(s["p_value"])
    assert r["ci_low"] == pytest.approx(s["ci_low"] + 0.8571)  # the interval stays on x's scale


def test_corrected_ttest_degenerate():
    one = corrected_resampled_ttest([0.3], 80, 20)
    assert one["mean_diff"] == 0.3 and math.isnan(one["p_value"]) and math.isnan(one["ci_low"])
    zero = corrected_resampled_ttest([0.0, 0.0, 0.0], 80, 20)
    assert (zero["statistic"], zero["p_value"], zero["ci_low"]) == (0.0, 1.0, 0.0)
    const = corrected_resampled_ttest([0.1, 0.1, 0.1], 80, 20)
    assert const["statistic"] == math.inf and const["p_value"] == 0.0


def test_corrected_ttest_errors():
    with pytest.raises(ValueError, match="positive finite n_train"):
        corrected_resampled_ttest([1.0, 2.0], 0, 20)
    with pytest.raises(ValueError, match="n_test"):
        corrected_resampled_ttest([1.0, 2.0], 80, None)
    with pytest.raises(ValueError, match="alternative"):
        corrected_resampled_ttest([1.0, 2.0], 80, 20, alternative="bigger")
    with pytest.raises(ValueError, match="finite values in diffs"):
        corrected_resampled_ttest([1.0, float("nan")], 80, 20)
    with pytest.raises(ValueError, match="confidence"):
        corrected_resampled_ttest([1.0, 2.0], 80, 20, confidence=95)


# ----------------------------------------------------------------------------------------------
# non-inferiority
# ----------------------------------------------------------------------------------------------

_CENTRED = np.array([-0.002, 0.001, 0.0, 0.002, -0.001])  # mean 0, sd 0.00158


def test_noninferiority_matches_scipy_one_sided_t():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.97, 0.003, 8), rng.normal(0.971, 0.003, 8)
    r = noninferiority_test(a, b, margin=0.005)
    ref = st_scipy.ttest_1samp(a - b, -0.005, alternative="greater")
    assert r["statistic"] == pytest.approx(ref.statistic) and r["p_value"] == pytest.approx(ref.pvalue)
    ci = st_scipy.ttest_1samp(a - b, 0.0).confidence_interval(0.90)  # 1 - 2 alpha
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # margin 0 is the one-sided paired superiority test
    r0 = noninferiority_test(a, b, margin=0.0)
    assert r0["p_value"] == pytest.approx(st_scipy.ttest_rel(a, b, alternative="greater").pvalue)


def test_noninferiority_constructed_cases():
    b = np.full(5, 0.970)
    # A equal to B up to noise, margin 0.5 points: non-inferior (p tiny, CI above -0.005)
    same = noninferiority_test(b + _CENTRED, b, margin=0.005)
    assert same["p_value"] < 0.01 and same["ci_low"] > -0.005 and same["bound"] == -0.005
    # A 2 points worse: the whole interval below -0.005, p ~ 1
    worse = noninferiority_test(b - 0.02 + _CENTRED, b, margin=0.005)
    assert worse["p_value"] > 0.999 and worse["ci_high"] < -0.005
    # A 0.5 points worse on average: the interval contains the bound
    edge = noninferiority_test(b - 0.005 + _CENTRED, b, margin=0.005)
    assert edge["ci_low"] < -0.005 < edge["ci_high"] and edge["p_value"] == pytest.approx(0.5)


def test_noninferiority_lower_is_better():
    b = np.full(5, 10.0)  # e.g. ||J||_F, lower is better, margin 0.5
    r = noninferiority_test(b + 0.2 + _CENTRED * 100, b, margin=0.5, direction="lower")
    assert r["bound"] == 0.5 and r["p_value"] < 0.05 and r["ci_high"] < 0.5
    flipped = noninferiority_test(-(b + 0.2 + _CENTRED * 100), -b, margin=0.5)
    assert r["p_value"] == pytest.approx(flipped["p_value"])


def test_noninferiority_corrected_variance_for_cv():
    # 2 x 5-fold CV of Pima-sized data (614 train, 154 test): the plain test is overconfident
    d = np.array([0.01, -0.02, 0.0, 0.015, -0.01, 0.005, -0.015, 0.01, 0.0, -0.005])
    a, b = 0.75 + d, np.full(10, 0.75)
    plain = noninferiority_test(a, b, margin=0.01)
    cv = noninferiority_test(a, b, margin=0.01, n_train=614, n_test=154)
    assert plain["p_value"] < 0.05 < cv["p_value"] and cv["corrected"] and not plain["corrected"]
    ref = corrected_resampled_ttest(d, 614, 154, null=-0.01, alternative="greater")
    assert cv["p_value"] == pytest.approx(ref["p_value"]) and cv["variance"] == pytest.approx(ref["variance"])


def test_noninferiority_errors():
    with pytest.raises(ValueError, match="margin >= 0"):
        noninferiority_test([1.0, 2.0], [1.0, 2.0], margin=-0.1)
    with pytest.raises(ValueError, match="direction"):
        noninferiority_test([1.0, 2.0], [1.0, 2.0], margin=0.1, direction="up")
    with pytest.raises(ValueError, match="n_test"):
        noninferiority_test([1.0, 2.0], [1.0, 2.0], margin=0.1, n_train=80)
    with pytest.raises(ValueError, match="equal length"):
        noninferiority_test([1.0, 2.0], [1.0], margin=0.1)
    with pytest.raises(ValueError, match="alpha"):
        noninferiority_test([1.0, 2.0], [1.0, 2.0], margin=0.1, alpha=0.0)


# ----------------------------------------------------------------------------------------------
# TOST equivalence
# ----------------------------------------------------------------------------------------------


def test_tost_matches_two_scipy_one_sided_tests():
    x = np.array([1.012, 1.016, 1.014, 1.019, 1.013, 1.015])
    r = tost(x, 1.01, 1.02)
    p_low = st_scipy.ttest_1samp(x, 1.01, alternative="greater").pvalue
    p_high = st_scipy.ttest_1samp(x, 1.02, alternative="less").pvalue
    assert r["p_low"] == pytest.approx(p_low) and r["p_high"] == pytest.approx(p_high)
    assert r["p_value"] == pytest.approx(max(p_low, p_high))
    ci = st_scipy.ttest_1samp(x, 0.0).confidence_interval(0.90)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


@pytest.mark.parametrize(
    "centre, inside, outside",
    [(1.015, True, False),   # clearly inside [1.01, 1.02]
     (1.020, False, False),  # straddles the upper end
     (1.080, False, True)],  # ReLU-like tau: outside
)
def test_tost_constructed_cases(centre, inside, outside):
    x = centre + _CENTRED
    r = tost(x, 1.01, 1.02)
    assert (r["p_value"] <= 0.05) == inside
    assert (r["ci_high"] < 1.01 or r["ci_low"] > 1.02) == outside


def test_tost_p_agrees_with_interval_inside():
    for shift in np.linspace(1.005, 1.025, 41):
        r = tost(shift + _CENTRED, 1.01, 1.02)
        inside = r["ci_low"] >= 1.01 and r["ci_high"] <= 1.02
        assert (r["p_value"] <= 0.05) == inside


def test_tost_paired_and_corrected():
    a, b = [0.91, 0.92, 0.93, 0.92], [0.91, 0.915, 0.925, 0.925]
    r = tost_paired(a, b, -0.01, 0.01)
    assert r["p_value"] == pytest.approx(tost(np.subtract(a, b), -0.01, 0.01)["p_value"])
    cv = tost_paired(a, b, -0.01, 0.01, n_train=80, n_test=20)
    assert cv["corrected"] and cv["p_value"] > r["p_value"]


def test_tost_errors_and_degenerate():
    with pytest.raises(ValueError, match="low < high"):
        tost([1.0, 2.0], 2.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        tost([1.0, 2.0], 1.0, float("inf"))
    assert math.isnan(tost([1.015], 1.01, 1.02)["p_value"])
    assert tost([1.015, 1.015], 1.01, 1.02)["p_value"] == 0.0  # zero spread, inside


# ----------------------------------------------------------------------------------------------
# failure rates
# ----------------------------------------------------------------------------------------------


def test_failure_rate_clopper_pearson_known_values():
    r = failure_rate(1, 5)
    assert r["rate"] == 0.2 and r["method"] == "clopper-pearson"
    # lower = 1 - 0.975^(1/5) (Beta(1, 5) quantile), upper = Beta(2, 4) 0.975 quantile
    assert r["ci_low"] == pytest.approx(1 - 0.975 ** (1 / 5)) == pytest.approx(0.00505, abs=1e-5)
    assert r["ci_high"] == pytest.approx(0.7164, abs=1e-4)
    assert failure_rate(0, 10)["ci_low"] == 0.0
    assert failure_rate(0, 10)["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert failure_rate(10, 10)["ci_low"] == pytest.approx(0.025 ** (1 / 10))
    assert failure_rate(10, 10)["ci_high"] == 1.0


def test_failure_rate_wilson_by_hand():
    k, n, z = 1, 5, 1.959963984540054
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    r = failure_rate(k, n, method="wilson")
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert r["ci_high"] - r["ci_low"] < failure_rate(k, n)["ci_high"] - failure_rate(k, n)["ci_low"]


def test_failure_rate_errors():
    for bad in [(6, 5), (-1, 5), (0, 0), (1.0, 5), (True, 5)]:
        with pytest.raises(ValueError, match="expected integer counts"):
            failure_rate(*bad)
    with pytest.raises(ValueError, match="method"):
        failure_rate(1, 5, method="wald")
    assert failure_rate(np.int64(2), np.int64(10))["rate"] == 0.2


def test_compare_failure_rates_fisher():
    r = compare_failure_rates(0, 10, 5, 10)
    assert r["p_value"] == pytest.approx(2 * 252 / 15504)  # C(10,5)/C(20,5), both tails
    assert (r["rate_a"], r["rate_b"], r["difference"]) == (0.0, 0.5, -0.5)
    assert compare_failure_rates(1, 5, 0, 5)["p_value"] == 1.0
    one = compare_failure_rates(5, 10, 0, 10, alternative="greater")
    assert one["p_value"] == pytest.approx(252 / 15504)
    with pytest.raises(ValueError, match="failed_b"):
        compare_failure_rates(1, 5, 6, 5)


# ----------------------------------------------------------------------------------------------
# expected best validation score vs budget (Dodge et al. 2019)
# ----------------------------------------------------------------------------------------------


def test_expected_max_exact_enumeration():
    scores = [0.70, 0.82, 0.82, 0.91]  # a tie included
    for k in (1, 2, 3):
        maxima = np.array([max(t) for t in product(scores, repeat=k)])  # all 4^k draws, equally likely
        c = expected_max_curve(scores, ks=[k])
        assert c["mean"][0] == pytest.approx(maxima.mean(), abs=1e-12)
        assert c["variance"][0] == pytest.approx(maxima.var(), abs=1e-12)


def test_expected_max_monte_carlo():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.6, 0.9, 7)
    draws = rng.choice(scores, size=(200_000, 5), replace=True).max(axis=1)
    c = expected_max_curve(scores, ks=[5])
    assert c["mean"][0] == pytest.approx(draws.mean(), abs=1e-3)
    assert c["std"][0] == pytest.approx(draws.std(), abs=1e-3)


def test_expected_max_limits_and_direction():
    scores = [0.3, 0.9, 0.5, 0.7]
    c = expected_max_curve(scores)
    assert c["k"] == [1, 2, 3, 4]
    assert c["mean"][0] == pytest.approx(0.6) and c["variance"][0] == pytest.approx(np.var(scores))
    assert np.all(np.diff(c["mean"]) > 0)  # more budget, better expected best
    big = expected_max_curve(scores, ks=[2000])
    assert big["mean"][0] == pytest.approx(0.9) and big["std"][0] == pytest.approx(0.0, abs=1e-6)
    low = expected_max_curve(scores, ks=[1, 3], direction="lower")
    neg = expected_max_curve([-s for s in scores], ks=[1, 3])
    assert low["mean"] == pytest.approx([-m for m in neg["mean"]])
    assert low["variance"] == pytest.approx(neg["variance"])


def test_expected_max_errors():
    for ks in ([0], [1.5], [], [[1, 2]]):
        with pytest.raises(ValueError, match="integer budgets"):
            expected_max_curve([0.1, 0.2], ks=ks)
    with pytest.raises(ValueError, match="at least one"):
        expected_max_curve([])


# ----------------------------------------------------------------------------------------------
# edge of range
# ----------------------------------------------------------------------------------------------


def test_edge_of_range_log_and_linear():
    # the v1 MNIST learning rates: 0.0081-0.0091 under a 0.01 ceiling of a [1e-4, 1e-2] log range
    assert edge_of_range(0.0081, 1e-4, 1e-2, log=True) and edge_of_range(0.0091, 1e-4, 1e-2, log=True)
    assert not edge_of_range(1e-3, 1e-4, 1e-2, log=True)
    assert edge_of_range(1.5e-4, 1e-4, 1e-2, log=True)  # the lower end counts too
    assert range_position(0.0081, 1e-4, 1e-2, log=True) == pytest.approx((math.log10(0.0081) + 4) / 2)
    assert not edge_of_range(0.0081, 1e-4, 1e-2)  # linear: 0.81 of the range
    assert edge_of_range(0.95, 0.0, 1.0) and edge_of_range(0.1, 0.0, 1.0)  # bounds included
    assert not edge_of_range(0.11, 0.0, 1.0) and edge_of_range(0.2, 0.0, 1.0, share=0.25)
    assert range_position(5, 0, 10) == 0.5  # integer ranges work


def test_edge_of_range_errors():
    with pytest.raises(ValueError, match="inside its range"):
        edge_of_range(0.02, 1e-4, 1e-2, log=True)
    with pytest.raises(ValueError, match="low > 0"):
        edge_of_range(0.5, 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="low < high"):
        edge_of_range(0.5, 1.0, 0.0)
    with pytest.raises(ValueError, match="share"):
        edge_of_range(0.5, 0.0, 1.0, share=0.5)


# ----------------------------------------------------------------------------------------------
# parameter ratio at equal accuracy
# ----------------------------------------------------------------------------------------------


def _acc(params):  # accuracy linear in log10 params: 0.80 at 1e3, 0.90 at 1e5
    return 0.80 + 0.05 * np.log10(np.asarray(params, dtype=float) / 1e3)


def test_params_at_accuracy_hand_computed():
    p, note = params_at_accuracy([1000, 4000, 16000], [0.90, 0.94, 0.96], 0.92)
    assert p == pytest.approx(2000) and note == ""  # half way on the log axis
    # unsorted input, non-monotone curve: the first crossing counts
    p, _ = params_at_accuracy([16000, 1000, 4000, 64000], [0.93, 0.90, 0.94, 0.95], 0.93)
    assert p == pytest.approx(1000 * 4 ** 0.75)
    small = params_at_accuracy([1000, 4000], [0.95, 0.96], 0.92)
    assert small == (pytest.approx(1000), "reached at the smallest width")
    p, note = params_at_accuracy([1000, 4000], [0.90, 0.91], 0.92)
    assert math.isnan(p) and note == "never reaches the target"


def test_param_ratio_known_shift_of_four():
    rng = np.random.default_rng(4)
    base_p = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    cr_p = np.array([300.0, 1e3, 2e3, 5e3, 2e4])  # a different grid: CR(p) = base(4 p)
    noise = lambda: (e := rng.normal(0, 0.004, 6)) - e.mean()  # noqa: E731  seeds, mean exactly 0
    base_acc = [_acc(p) + noise() for p in base_p]
    cr_acc = [_acc(4 * p) + noise() for p in cr_p]
    r = param_ratio_bootstrap(base_p, base_acc, cr_p, cr_acc, target=0.87, n_boot=500, rng=0)
    # 0.87 = 0.80 + 0.05 log10(p / 1e3): baseline at 10^4.4, ChainzRule at 10^4.4 / 4
    assert r["params_base"] == pytest.approx(10**4.4) and r["params_cr"] == pytest.approx(10**4.4 / 4)
    assert r["ratio"] == pytest.approx(4.0) and r["reason"] == ""
    assert r["ci_low"] < 4.0 < r["ci_high"] and r["ci_high"] / r["ci_low"] < 2
    again = param_ratio_bootstrap(base_p, base_acc, cr_p, cr_acc, target=0.87, n_boot=500,
                                  rng=np.random.default_rng(0))
    assert again == r  # a seed and the same Generator give the same interval


def test_param_ratio_target_from_best_baseline():
    base_p, cr_p = np.array([1e3, 1e4, 1e5]), np.array([250.0, 2.5e3, 2.5e4])
    base_acc = [_acc(p) + np.array([-0.002, 0.002]) for p in base_p]
    cr_acc = [_acc(4 * p) + np.array([-0.002, 0.002]) for p in cr_p]
    r = param_ratio_bootstrap(base_p, base_acc, cr_p, cr_acc, margin=0.01, n_boot=200)
    assert r["target"] == pytest.approx(0.89)  # best baseline mean 0.90 minus 1 point
    assert r["ratio"] == pytest.approx(4.0)


def test_param_ratio_never_reaches_and_censoring():
    base_p, cr_p = [1e3, 1e4, 1e5], [1e3, 1e4]
    base = [[0.80, 0.80], [0.85, 0.85], [0.90, 0.90]]
    never = param_ratio_bootstrap(base_p, base, cr_p, [[0.70, 0.71], [0.75, 0.76]], target=0.85, n_boot=100)
    assert math.isnan(never["ratio"]) and math.isnan(never["ci_low"])
    assert never["reason"] == "never reaches the target: ChainzRule" and never["note_cr"] == "never reaches the target"
    # ChainzRule reaches 0.85 on average at its largest width, but not in many resamples:
    # those count as ratio 0, so the lower bound says "maybe never"
    edge = param_ratio_bootstrap(base_p, base, cr_p, [[0.70, 0.71], [0.80, 0.90]], target=0.85, n_boot=400)
    assert edge["ratio"] == pytest.approx(1.0) and edge["ci_low"] == 0.0
    assert 0.1 < edge["frac_never"]["chainzrule"] < 0.5 and edge["frac_never"]["baseline"] == 0.0
    small = param_ratio_bootstrap(base_p, base, cr_p, [[0.90, 0.90], [0.95, 0.95]], target=0.85, n_boot=10)
    assert small["note_cr"] == "reached at the smallest width" and small["ratio"] == pytest.approx(10**1.0)


def test_param_ratio_errors():
    ok_p, ok_a = [1e3, 1e4], [[0.8], [0.9]]
    with pytest.raises(ValueError, match="one array of seed accuracies per width"):
        param_ratio_bootstrap(ok_p, [[0.8]], ok_p, ok_a, target=0.85)
    with pytest.raises(ValueError, match="distinct positive parameter counts"):
        param_ratio_bootstrap([1e3, 1e3], ok_a, ok_p, ok_a, target=0.85)
    with pytest.raises(ValueError, match="n_boot"):
        param_ratio_bootstrap(ok_p, ok_a, ok_p, ok_a, target=0.85, n_boot=0)
    with pytest.raises(ValueError, match="finite values"):
        param_ratio_bootstrap(ok_p, [[0.8], [float("nan")]], ok_p, ok_a, target=0.85)


# ----------------------------------------------------------------------------------------------
# the new p-values in a Holm family
# ----------------------------------------------------------------------------------------------


def test_new_tests_feed_holm():
    b = np.full(5, 0.970)
    family = {
        "ni_cr": noninferiority_test(b + _CENTRED, b, margin=0.005)["p_value"],
        "ni_kan": noninferiority_test(b - 0.004 + _CENTRED, b, margin=0.005)["p_value"],
        "tost_tau": tost(1.015 + _CENTRED, 1.01, 1.02)["p_value"],
        "cv": corrected_resampled_ttest([0.01, 0.02, 0.0, 0.015, 0.01], 614, 154)["p_value"],
        "one_seed": tost([1.015], 1.01, 1.02)["p_value"],  # nan: counts in m, never rejected
    }
    holm = holm_bonferroni(family)
    assert list(holm.adjusted) == list(family)
    assert holm.reject["ni_cr"] and holm.reject["tost_tau"] and not holm.reject["one_seed"]
    assert math.isnan(holm.adjusted["one_seed"])
    assert holm.adjusted["ni_cr"] == pytest.approx(min(1.0, 5 * family["ni_cr"]))


def test_param_ratio_interval_widening_bounds_and_one_seed():
    """The accuracy-matched ratio: Nadeau–Bengio's factor widens the interval in log ratio by its
    square root; one seed per width gives no interval; the claim verdict never lets a ratio that
    is a bound decide the side it bounds."""
    import math

    from chainzrule.fight.stats import nadeau_bengio_factor, param_ratio_bootstrap

    acc = [[0.89, 0.91, 0.90], [0.93, 0.95, 0.94], [0.96, 0.96, 0.97]]
    args = ([1e3, 1e4, 1e5], acc, [250, 2.5e3, 2.5e4], acc)
    plain = param_ratio_bootstrap(*args, target=0.95)
    wide = param_ratio_bootstrap(*args, target=0.95, variance_factor=9.0)
    log_r = math.log(plain["ratio"])
    for end in ("ci_low", "ci_high"):
        assert math.log(wide[end]) - log_r == pytest.approx(3.0 * (math.log(plain[end]) - log_r))
    assert nadeau_bengio_factor(25, 600, 150) == pytest.approx(7.25)
    with pytest.raises(ConfigError, match="variance_factor"):
        param_ratio_bootstrap(*args, target=0.95, variance_factor=0.5)
    one = param_ratio_bootstrap([1e3, 1e4, 1e5], [[0.9], [0.94], [0.96]], [250, 2.5e3, 2.5e4],
                                [[0.9], [0.94], [0.96]], target=0.95)
    assert math.isnan(one["ci_low"]) and "one seed" in one["reason"]
    # ChainzRule reaches the target at its smallest width: the ratio is a lower bound
    low = param_ratio_bootstrap([1e3, 1e4, 1e5], [[.90, .91], [.94, .95], [.96, .97]], [1e4, 1e5],
                                [[.97, .98], [.98, .985]], margin=0.01)
    assert low["note_cr"] == "reached at the smallest width"


def test_claim_verdicts_respect_bounds_tolerance_and_levels():
    from chainzrule.fight.claims import _claim_param_ratio_val
    from chainzrule.fight.stats import noninferiority_test, tost
    from chainzrule.fight.verdicts import verdict_range

    sv = {"contender": "cr", "baseline": "b", "margin": 0.01, "variance_factor": 1.0}
    r = {"ratio": 3.16, "ci_low": 1.0, "ci_high": 4.64, "target": 0.96, "note_base": "",
         "note_cr": "reached at the smallest width", "n_boot": 10, "reason": ""}
    row = {"note": "", "verdict": "not tested"}
    _claim_param_ratio_val(row, {"claimed": 15.5}, {**sv, "val": r}, None)
    assert row["verdict"] == "inconclusive"  # would be "not supported" for an exact ratio
    row = {"note": "", "verdict": "not tested"}
    _claim_param_ratio_val(row, {"claimed": 0.5}, {**sv, "val": {**r, "note_cr": "", "note_base": r["note_cr"]}}, None)
    assert row["verdict"] == "inconclusive"  # would be "supported"
    x = [1.013, 1.014, 1.015, 1.016, 1.017]
    # strict end 1.01 ("lower": at most the range's low end), tolerance 0.005: the verdict compares
    # with 1.015, and so does p (not with 1.01)
    from chainzrule.fight.stats import one_sample_tests

    got = verdict_range(x, [1.01, 1.02], "lower", rule="strict-end", tolerance=0.005)
    assert got["p_value"] == pytest.approx(one_sample_tests(x, 1.015)["t_p"])
    assert got["p_value"] != pytest.approx(one_sample_tests(x, 1.01)["t_p"])
    for fn, call in ((noninferiority_test, lambda: noninferiority_test([1, 2, 3], [1, 2, 2], 0.1, alpha=0.6)),
                     (tost, lambda: tost(x, 1.0, 1.1, alpha=0.5))):
        with pytest.raises(ConfigError, match="alpha < 0.5"):
            call()


def test_int_log_ranges_are_judged_on_a_log_scale():
    from chainzrule.fight.stats import edge_of_range
    from chainzrule.fight.tuning_views import _numeric_space

    lo, hi, log = _numeric_space([16, 1024, "int-log"])
    assert log and not edge_of_range(32, lo, hi, log)
