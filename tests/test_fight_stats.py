"""Tests for chainzrule.fight.stats: summaries, paired tests, Holm, verdicts, ratio reduction."""

import math
import warnings

import numpy as np
import pytest
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
