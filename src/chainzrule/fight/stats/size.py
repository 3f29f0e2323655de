"""Fight statistics: size view: parameters needed to reach an accuracy, and their ratio with a bootstrap interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from .checks import as_values

__all__ = ["param_ratio_bootstrap", "params_at_accuracy"]


def _param_counts(params: Any, name: str) -> np.ndarray:
    """A sweep's parameter counts [W]; DataError unless distinct and positive."""
    p = as_values(params, f"{name} params")
    if np.any(p <= 0) or np.unique(p).size != p.size:
        raise DataError(f"expected distinct positive parameter counts for {name}, got {p.tolist()}")
    return p


def _as_sweep(params: Any, acc: Any, name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """A width sweep sorted by parameter count: log params [W] and per-width seed values."""
    p = _param_counts(params, name)
    if isinstance(acc, np.ndarray) and acc.ndim == 2:
        acc = list(acc)
    if len(acc) != p.size:
        raise DataError(f"expected one array of seed accuracies per width for {name} ({p.size}), got {len(acc)}")
    a = [as_values(v, f"{name} accuracies at {p[i]:g} params") for i, v in enumerate(acc)]
    order = np.argsort(p)
    return np.log(p[order]), [a[i] for i in order]


def _first_crossing(logp: np.ndarray, curves: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Log params where each curve first reaches its target, linear in log params.

    logp [W] increasing, curves [B, W] mean accuracies, target [B] → [B], ``nan`` where a curve
    never reaches its target, ``logp[0]`` where it is reached at the smallest width.
    """
    reached = curves >= target[:, None]  # [B, W]
    first = np.argmax(reached, axis=1)  # first width at or above the target
    out = np.full(curves.shape[0], np.nan)
    out[reached.any(axis=1) & (first == 0)] = logp[0]
    rows = np.flatnonzero(reached.any(axis=1) & (first > 0))
    j = first[rows]
    a0, a1 = curves[rows, j - 1], curves[rows, j]  # a0 < target ≤ a1
    out[rows] = logp[j - 1] + (target[rows] - a0) / (a1 - a0) * (logp[j] - logp[j - 1])
    return out


def params_at_accuracy(params: Any, accuracy: Any, target: float) -> tuple[float, str]:
    """Smallest parameter count at which a mean accuracy curve reaches ``target``.

    The curve is linear in log params between widths; the first crossing counts (the curve
    need not be monotone).

    Parameters
    ----------
    params : array_like, shape (W,)
        Parameter count of each width, distinct, > 0.
    accuracy : array_like, shape (W,)
        Mean accuracy of each width (fraction or points; the same units as ``target``).
    target : float

    Returns
    -------
    (float, str)
        The parameter count and a note: ``""``; ``"reached at the smallest width"`` (the count
        is an upper bound); ``"never reaches the target"`` with ``nan``.

    Examples
    --------
    Half way from 0.90 to 0.94 between 1,000 and 4,000 params is 2,000 on the log axis:

    >>> p, note = params_at_accuracy([1000, 4000, 16000], [0.90, 0.94, 0.96], 0.92)
    >>> round(p), note
    (2000, '')
    """
    logp, acc = _as_sweep(params, [[float(a)] for a in as_values(accuracy, "accuracy")], "the curve")
    if not math.isfinite(target):
        raise ConfigError(f"expected a finite target accuracy, got {target}")
    x = _first_crossing(logp, np.array([[a[0] for a in acc]]), np.array([float(target)]))[0]
    if math.isnan(x):
        return float("nan"), "never reaches the target"
    return float(math.exp(x)), "reached at the smallest width" if x == logp[0] else ""


def _resampled_curves(acc: list[np.ndarray], n_boot: int, rng: np.random.Generator,
                      idx: np.ndarray | None = None, select: list[np.ndarray] | None = None) -> np.ndarray:
    """[n_boot, W] mean accuracy per width: units resampled with replacement within each width,
    or, given ``idx`` [n_boot, S], the same draw of the S aligned units at every width. With
    ``select`` each width holds candidates, ``acc[w]`` and ``select[w]`` [P, S]: in every draw the
    candidate with the highest mean ``select`` over the drawn units is read (the first of equal ones)."""
    if select is None:
        if idx is not None:
            return np.stack([a[idx].mean(axis=1) for a in acc], axis=1)
        return np.stack([a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1) for a in acc], axis=1)
    out = []
    for a, s in zip(acc, select):
        i = idx if idx is not None else rng.integers(0, a.shape[1], size=(n_boot, a.shape[1]))
        choice = np.argmax(s[:, i].mean(axis=2), axis=0)  # [n_boot]: the drawn units choose the candidate
        out.append(a[:, i].mean(axis=2)[choice, np.arange(choice.size)])
    return np.stack(out, axis=1)


def _as_candidates(params: Any, acc: Any, select: Any,
                   name: str) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """A width sweep with candidates per width, sorted by parameter count: log params [W], and per
    width the [P, S] accuracies and selection scores (finite, the same shape)."""
    p = _param_counts(params, name)
    if len(acc) != p.size or len(select) != p.size:
        raise DataError(f"expected one [candidates, units] array of accuracies and of selection scores per width for "
                        f"{name} ({p.size}), got {len(acc)} and {len(select)}")
    a = [np.asarray(v, dtype=np.float64) for v in acc]
    s = [np.asarray(v, dtype=np.float64) for v in select]
    for i, (x, y) in enumerate(zip(a, s)):
        if x.ndim != 2 or x.shape != y.shape or x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError(f"expected finite [candidates, units] arrays of one shape at {p[i]:g} params of {name}, "
                            f"got shapes {x.shape} and {y.shape}")
    order = np.argsort(p)
    return np.log(p[order]), [a[i] for i in order], [s[i] for i in order]


# over 60 lines only by its docstring (formula, assumptions, example); the code is one test
def param_ratio_bootstrap(
    base_params: Any,
    base_acc: Any,
    cr_params: Any,
    cr_acc: Any,
    *,
    target: float | None = None,
    margin: float = 0.0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
    variance_factor: float = 1.0,
    paired: bool = False,
    base_select: Any = None,
    cr_select: Any = None,
) -> dict[str, Any]:
    """Parameter ratio at equal accuracy, ``params_base / params_cr``, with a bootstrap interval.

    Each family's mean accuracy curve over its width sweep (every width tuned on validation) is
    read at ``target`` with :func:`params_at_accuracy`. Without ``target`` it is the best
    baseline width's mean minus ``margin``, recomputed in every resample, so choosing that
    width is part of the estimator. The percentile interval resamples seeds with replacement
    within each width of each family (``n_boot`` times, from ``rng``); with ``paired``, where the
    same units (seeds, or splits) ran at every width of both families and position ``s`` of every
    width's array is the same unit, one draw of units serves every width of both families, so
    the resamples keep what a unit shares across widths (its split, its seed's data order). A resample where a family
    never reaches the target is censored, not dropped: ChainzRule never reaching it counts as
    ratio 0 (it would need more than its largest width), the baseline never reaching it as
    ``+inf``, so an interval bound of 0 or inf says the sweep is too short. If both never reach
    it in more than ``(1 − confidence)/2`` of the resamples, the interval is ``nan`` with the
    reason. If either never reaches it on the mean curves, the ratio is ``nan`` with the reason.
    A width with one seed has no spread to resample: the interval is ``nan`` with the reason.

    ``variance_factor`` widens the interval for correlated units: the distances of its ends
    from the ratio, in log ratio, are multiplied by ``sqrt(variance_factor)``. Under repeated
    cross-validation the resampled units (splits) share training rows, so the bootstrap's
    spread is too small; pass Nadeau–Bengio's ``1 + J·n_test/n_train`` (``J`` units per width,
    :func:`nadeau_bengio_factor`), the factor by which the naive variance of a mean of ``J``
    such units understates the corrected one.

    Parameters
    ----------
    base_params, cr_params : array_like, shape (W_base,), (W_cr,)
        Parameter count of each width, distinct, > 0.
    base_acc, cr_acc : sequence of array_like, one shape (S_w,) array per width
        Per-seed accuracies of each width (any units, the same for both and for ``target``).
    target : float, optional
        A fixed accuracy to match.
    margin : float
        Subtracted from the best baseline mean when ``target`` is None.
    n_boot, confidence, rng
        Resamples, interval level, and a numpy Generator or seed (deterministic by default).
    variance_factor : float
        ≥ 1; see above (1: the plain percentile interval).
    paired : bool
        Resample the units jointly (see above); every width needs the same number of them.
    base_select, cr_select : sequence of array_like, one shape (P_w, S_w) array per width, optional
        A width that chose among P candidates (learning rates, strengths) on the same units: then
        that family's ``*_acc`` holds the candidates' accuracies, shape (P_w, S_w) per width, and
        ``*_select`` the scores that chose (validation accuracy); the ratio and every resample read
        the candidate whose mean score over *its* units is highest (the first of equal ones, so
        order the candidates by the tie rule). The choice is part of the estimator: a resample of
        the units redoes it, as it redoes the best baseline width.

    Returns
    -------
    dict
        ``ratio, ci_low, ci_high, target, params_base, params_cr, note_base, note_cr`` (see
        :func:`params_at_accuracy`; "reached at the smallest width" makes the ratio a bound),
        ``n_boot``, ``frac_never`` (``{"baseline", "chainzrule"}``: share of the resamples in
        which each never reaches the target), ``reason`` ("" when the ratio and interval exist).

    Examples
    --------
    The CR curve is the baseline's shifted by a factor 4 in params, two seeds per width:

    >>> acc = [[0.89, 0.91], [0.93, 0.95], [0.96, 0.96]]
    >>> r = param_ratio_bootstrap([1e3, 1e4, 1e5], acc, [250, 2.5e3, 2.5e4], acc, target=0.95)
    >>> round(r["ratio"], 6), r["ci_low"] < 4.0 < r["ci_high"]
    (4.0, True)
    >>> r1 = param_ratio_bootstrap([1e3, 1e4, 1e5], [[0.9], [0.94], [0.96]], [250, 2.5e3, 2.5e4],
    ...                            [[0.9], [0.94], [0.96]], target=0.95)
    >>> round(r1["ratio"], 6), r1["ci_low"], r1["reason"]
    (4.0, nan, 'a width with one seed: no interval')

    Paired units: seed 1 is the better one at every width of both families, so resampling the
    seeds jointly keeps the curves' shift and the interval collapses onto the ratio:

    >>> rp = param_ratio_bootstrap([1e3, 1e4, 1e5], acc, [250, 2.5e3, 2.5e4], acc, target=0.95, paired=True)
    >>> round(rp["ci_low"], 6), round(rp["ci_high"], 6)
    (4.0, 4.0)
    """
    if (base_select is None) != (cr_select is None):
        raise ConfigError("expected base_select and cr_select together (or neither)")
    if base_select is None:
        lb, ab = _as_sweep(base_params, base_acc, "the baseline")
        lc, ac = _as_sweep(cr_params, cr_acc, "ChainzRule")
        sb = sc = None
    else:
        lb, ab, sb = _as_candidates(base_params, base_acc, base_select, "the baseline")
        lc, ac, sc = _as_candidates(cr_params, cr_acc, cr_select, "ChainzRule")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected n_boot >= 1 and confidence in (0, 1), got {n_boot!r}, {confidence!r}")
    if not (math.isfinite(variance_factor) and variance_factor >= 1.0):
        raise ConfigError(f"expected a finite variance_factor >= 1, got {variance_factor!r}")
    if (target is not None and not math.isfinite(target)) or not math.isfinite(margin):
        raise ConfigError(f"expected a finite target (or None) and margin, got {target!r}, {margin!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    idx = None
    if paired:
        units = {a.shape[-1] for a in ab + ac}
        if len(units) != 1:
            raise DataError(f"expected the same number of units at every width for paired resampling, got "
                            f"{sorted(units)}")
        n_units = units.pop()
        idx = gen.integers(0, n_units, size=(n_boot, n_units))  # [n_boot, S], shared by every width

    def crossings(cb: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.full(cb.shape[0], float(target)) if target is not None else cb.max(axis=1) - margin
        return t, _first_crossing(lb, cb, t), _first_crossing(lc, cc, t)

    if sb is None:
        means = [np.array([[a.mean() for a in f]]) for f in (ab, ac)]
    else:  # every unit once: the choice made on all of them
        means = [np.array([[a[np.argmax(c.mean(axis=1))].mean() for a, c in zip(f, s)]])
                 for f, s in ((ab, sb), (ac, sc))]
    t, xb, xc = (float(v[0]) for v in crossings(*means))
    _, bb, bc = crossings(_resampled_curves(ab, n_boot, gen, idx, sb), _resampled_curves(ac, n_boot, gen, idx, sc))
    ratios = np.exp(bb - bc)  # censored: ChainzRule never reaching → 0, the baseline never → inf
    ratios[np.isnan(bc)], ratios[np.isnan(bb)] = 0.0, np.inf
    ratios[np.isnan(bb) & np.isnan(bc)] = np.nan
    tail, undefined = (1.0 - confidence) / 2.0, float(np.mean(np.isnan(ratios)))
    reason = ""
    if math.isnan(xb) or math.isnan(xc):
        reason = "never reaches the target: " + " and ".join(
            n for n, x in (("the baseline", xb), ("ChainzRule", xc)) if math.isnan(x))
    elif undefined > tail:
        reason = f"neither family reaches the target in {100 * undefined:.1f}% of the resamples"
    interval_reason = "a width with one seed: no interval" if min(a.shape[-1] for a in ab + ac) < 2 else ""
    if reason or interval_reason:
        lo, hi = math.nan, math.nan
    else:
        lo, hi = np.quantile(ratios[~np.isnan(ratios)], [tail, 1.0 - tail], method="inverted_cdf")
        lo, hi = (_widen(float(v), xb - xc, variance_factor) for v in (lo, hi))
    return {"ratio": math.exp(xb - xc), "ci_low": float(lo), "ci_high": float(hi),
            "target": t, "params_base": math.exp(xb), "params_cr": math.exp(xc),
            "note_base": _crossing_note(xb, lb), "note_cr": _crossing_note(xc, lc),
            "n_boot": int(n_boot), "frac_never": {"baseline": float(np.mean(np.isnan(bb))),
                                                  "chainzrule": float(np.mean(np.isnan(bc)))},
            "reason": reason or interval_reason}


def _widen(end: float, log_ratio: float, factor: float) -> float:
    """An interval end moved away from ``exp(log_ratio)`` by ``sqrt(factor)`` in log ratio
    (censored ends, 0 and inf, stay where they are)."""
    if factor == 1.0 or end <= 0.0 or math.isinf(end):
        return end
    return math.exp(log_ratio + math.sqrt(factor) * (math.log(end) - log_ratio))


def nadeau_bengio_factor(units: int, n_train: float, n_test: float) -> float:
    """``1 + J·n_test/n_train``: how much the plain variance of a mean of ``J`` repeated-CV units
    understates Nadeau–Bengio's corrected one, ``(1/J + n_test/n_train)·s²`` against ``s²/J``.

    >>> nadeau_bengio_factor(25, 600, 150)
    7.25
    """
    return 1.0 + units * float(n_test) / float(n_train)


def _crossing_note(x: float, logp: np.ndarray) -> str:
    if math.isnan(x):
        return "never reaches the target"
    return "reached at the smallest width" if x == logp[0] else ""
