"""Classical baselines for tabular fights: logistic regression, RBF SVM, XGBoost."""

from __future__ import annotations

import time

import numpy as np

from ..config import TrainConfig
from ..data.splits import Splits
from ..ordinal import ordinal_metrics
from .record import RunResult, peak_memory_mb

__all__ = ["train_classical", "classical_estimator"]


def classical_estimator(cfg: TrainConfig):
    """The estimator of ``cfg`` on its real knobs: logreg C = 1/reg_strength; SVM C = 1/reg_strength
    and γ = ``svm_gamma`` (None: scikit-learn's "scale"); XGBoost ``xgb_trees`` (an upper bound
    when ``xgb_early_stopping`` > 0: boosting stops after that many rounds without a better
    validation log-loss and the best round is used), ``xgb_depth``, ``xgb_min_child_weight``,
    ``xgb_subsample``, eta = lr, reg_lambda = reg_strength."""
    strength = max(cfg.reg_strength, 1e-6)
    if cfg.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0 / strength, max_iter=2000, random_state=cfg.seed)
    if cfg.model == "svm":
        from sklearn.svm import SVC

        gamma = "scale" if cfg.svm_gamma is None else cfg.svm_gamma
        return SVC(C=1.0 / strength, kernel="rbf", gamma=gamma, random_state=cfg.seed)
    from xgboost import XGBClassifier

    stop = {"early_stopping_rounds": cfg.xgb_early_stopping} if cfg.xgb_early_stopping else {}
    return XGBClassifier(n_estimators=cfg.xgb_trees, max_depth=cfg.xgb_depth, learning_rate=min(cfg.lr, 1.0),
                         min_child_weight=cfg.xgb_min_child_weight, subsample=cfg.xgb_subsample,
                         reg_lambda=cfg.reg_strength, random_state=cfg.seed, n_jobs=1, tree_method="hist",
                         verbosity=0, **stop)


def _fit(cfg: TrainConfig, est, X, y, classes, splits: Splits) -> None:
    """Fit ``est`` on training rows; XGBoost with early stopping watches the validation split
    (its rows whose class was seen in training), never the test split."""
    if cfg.model == "xgboost" and cfg.xgb_early_stopping:
        yv = splits.y_val.numpy()
        seen = np.isin(yv, classes)
        est.fit(X, y, eval_set=[(splits.X_val.numpy()[seen], np.searchsorted(classes, yv[seen]))], verbose=False)
    else:
        est.fit(X, y)


def train_classical(cfg: TrainConfig, splits: Splits, test: bool = True) -> RunResult:
    """Fit a scikit-learn/XGBoost baseline. ``reg_strength`` is 1/C (logreg, svm) or λ (xgboost);
    ``lr`` is XGBoost's learning rate. Gradient diagnostics do not apply and are reported as None.

    The labels seen in training are mapped to 0..k-1 (XGBoost needs them contiguous) and the
    predictions mapped back, so a training split that lacks a class still works (that class is
    never predicted). With a single class, or when the fit itself fails, the run is not a crash:
    its result says ``"failed": reason`` and holds no accuracies.
    """
    X, y = splits.X_train.numpy(), splits.y_train.numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        return _failed(f"the training split holds only class {classes[0] if len(classes) else 'none'}: "
                       f"{cfg.model} needs at least 2 classes", test)
    est = classical_estimator(cfg)
    start = time.perf_counter()
    try:
        _fit(cfg, est, X, np.searchsorted(classes, y), classes, splits)
    except Exception as e:  # a baseline that cannot be fitted fails its run, never the fight
        return _failed(f"{cfg.model} could not be fitted: {type(e).__name__}: {e}", test)
    seconds = time.perf_counter() - start
    predict = lambda x: classes[np.asarray(est.predict(x.numpy())).astype(np.int64)]
    val_acc = float((predict(splits.X_val) == splits.y_val.numpy()).mean())
    result = {**_empty_result(), "val": {"accuracy": val_acc}, "params": _fitted_numbers(est),
              "train_seconds": seconds, "peak_memory_mb": peak_memory_mb()}
    if test:
        result["test"] = _test_metrics(predict(splits.X_test), splits)
    return RunResult(None, result, [])


def _test_metrics(pred: np.ndarray, splits: Splits) -> dict:
    """Accuracy of the test predictions ``pred`` (and the ordinal metrics for ordinal tasks)."""
    metrics = {"accuracy": float((pred == splits.y_test.numpy()).mean())}
    if splits.task == "ordinal":
        metrics.update(ordinal_metrics(splits.y_test.numpy(), pred, splits.num_classes))
    return metrics


def _empty_result() -> dict:
    """A classical run's record with every neural-only field None."""
    return {"val": {"accuracy": None}, "params": None, "jacobian_fro": {"mean": None, "p99": None},
            "tau_input": None, "tau_train": None, "pgv": None, "lipschitz_bound": None, "train_seconds": None,
            "step_ms": None, "steps": 0, "peak_memory_mb": None, "diverged": False, "history": {}}


def _failed(reason: str, test: bool) -> RunResult:
    result = {**_empty_result(), "failed": reason}
    if test:
        result["test"] = {"accuracy": None}
    return RunResult(None, result, [])


def _fitted_numbers(est) -> int | None:
    """Number of fitted numbers: coefficients (logreg), support-vector coordinates + duals (svm),
    tree nodes (xgboost)."""
    if hasattr(est, "coef_"):
        return int(est.coef_.size + est.intercept_.size)
    if hasattr(est, "support_vectors_"):
        return int(est.support_vectors_.size + est.dual_coef_.size + est.intercept_.size)
    try:
        return int(len(est.get_booster().trees_to_dataframe()))
    except Exception:  # pandas missing: count nodes from the JSON dump
        return int(sum(d.count('"nodeid"') for d in est.get_booster().get_dump(dump_format="json")))
