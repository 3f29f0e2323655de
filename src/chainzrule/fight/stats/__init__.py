"""Statistics of the Fair Fight (GUIDE section 4): summaries, paired tests, Holm, verdicts.

Every function takes plain sequences of per-seed results (lists, numpy arrays, CPU tensors) and
returns plain Python floats, lists and dicts, ready for JSON. Bad results (empty, non-finite,
unpaired) raise :class:`~chainzrule.errors.DataError`, bad settings (alpha, direction)
:class:`~chainzrule.errors.ConfigError`; both are ``ValueError``.

- :func:`summarize` — mean, std (ddof=1), n and a t-based confidence interval.
- :func:`paired_tests` / :func:`one_sample_tests` — paired t-test and Wilcoxon signed-rank
  (scipy), with the degenerate cases defined instead of raising.
- :func:`holm_bonferroni` — step-down adjusted p-values over a family of comparisons.
- :func:`verdict_level` — "our value reaches the claimed value v" claims.
- :func:`verdict_compare` — "A beats B" claims, from the paired results and the Holm-adjusted p.
- :func:`ratio_reduction` — "1 − CR/baseline, paired by seed, averaged over seeds" (PGV).

The v2 protocol's building blocks (their verdicts are in :mod:`chainzrule.fight.verdicts`):

- :func:`corrected_resampled_ttest` — Nadeau–Bengio's t-test for repeated k-fold CV.
- :func:`noninferiority_test` — "at least as good as, up to a margin δ" (paired, plain or
  corrected variance).
- :func:`tost` / :func:`tost_paired` — equivalence to a range (two one-sided tests).
- :func:`failure_rate` / :func:`compare_failure_rates` — unstable runs: Clopper–Pearson
  interval, Fisher's exact test.
- :func:`expected_max_curve` — expected best validation score vs tuning budget (Dodge et al.).
- :func:`range_position` / :func:`edge_of_range` — tuned optima on the edge of their range.
- :func:`params_at_accuracy` / :func:`param_ratio_bootstrap` — the accuracy-matched parameter
  ratio from width sweeps, with a bootstrap interval over seeds.

A whole claim row, as the report builds it:

>>> cr = [97.1, 97.3, 96.9, 97.2, 97.0]            # accuracy of CR over 5 seeds
>>> mlp = [96.8, 97.0, 96.7, 96.9, 96.6]           # the baseline, same seeds
>>> verdict_level(96.38, cr, "higher")             # "CR reaches 96.38%"
'supported'
>>> tests = paired_tests(cr, mlp)
>>> round(tests["mean_diff"], 2), round(tests["t_p"], 4), tests["wilcoxon_p"]
(0.3, 0.0007, 0.0625)
>>> holm = holm_bonferroni({"cr_vs_mlp": tests["t_p"], "cr_vs_kan": 0.20})
>>> holm.reject
{'cr_vs_mlp': True, 'cr_vs_kan': False}
>>> verdict_compare(cr, mlp, holm.adjusted["cr_vs_mlp"], "higher")   # "CR beats the MLP"
'supported'

Note: with 5 seeds the exact two-sided Wilcoxon p-value cannot go below 2/2^5 = 0.0625, so at
alpha = 0.05 only the t-test can reach significance; report both, decide on the one the fight
spec names (the paired t-test unless it says otherwise).
"""

from __future__ import annotations

from .checks import VERDICTS
from .summaries import one_sample_tests, paired_tests, summarize
from .multiple import holm_bonferroni, HolmResult
from .decisions import ratio_reduction, verdict_compare, verdict_level
from .ttests import corrected_resampled_ttest, noninferiority_test, summarize_splits, tost, tost_paired
from .rates import compare_failure_rates, failure_rate
from .budget import edge_of_range, expected_max_curve, range_position
from .size import nadeau_bengio_factor, param_ratio_bootstrap, params_at_accuracy

__all__ = [
    "VERDICTS",
    "summarize",
    "summarize_splits",
    "one_sample_tests",
    "paired_tests",
    "HolmResult",
    "holm_bonferroni",
    "verdict_level",
    "verdict_compare",
    "ratio_reduction",
    "corrected_resampled_ttest",
    "noninferiority_test",
    "tost",
    "tost_paired",
    "failure_rate",
    "compare_failure_rates",
    "expected_max_curve",
    "range_position",
    "edge_of_range",
    "params_at_accuracy",
    "param_ratio_bootstrap",
    "nadeau_bengio_factor",
]
