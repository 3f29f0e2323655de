"""A Fair Fight folder, loaded: :class:`Fight` (spec, results.csv rows, run records) and :func:`load_fight`.

The bottom layer of the fight analysis: :mod:`.views`, :mod:`.claims`, :mod:`.analysis`, the
figures and the report all read a :class:`Fight`. The folder's format is ``docs/FIGHT_FORMAT.md``;
:func:`to_number` and :func:`summary_of` read numbers out of its cells.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ADV_COLUMN, ATTACKS
from ..errors import ConfigError, DataError
from .stats import summarize

__all__ = ["Fight", "load_fight", "as_fight", "to_number", "summary_of", "width_point", "MAIN_METRICS"]

#: Metric columns of the main table, in this order (fgsm_/pgd_ columns are inserted after
#: corruption_accuracy); a column is shown only if some final run has a value in it.
MAIN_METRICS: tuple[str, ...] = (
    "test_accuracy", "test_mae", "test_off_by_one", "test_qwk", "jacobian_fro_mean", "tau_input", "tau_train",
    "pgv", "lipschitz_bound", "corruption_accuracy", "step_ms", "train_seconds",
)
#: Columns that, with n_train/n_test, mark results.csv rows as splits of repeated CV.
_SPLIT_COLS = ("repeat", "fold")


@dataclass
class Fight:
    """A fight folder, loaded: the spec (raw JSON), the results.csv rows, the run records."""

    folder: Path
    spec: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, str]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    unreadable_runs: int = 0

    # --- spec access (flat, as the runner writes it; the TOML's nested form also works) -----
    def get(self, key: str, default: Any = None) -> Any:
        if key in self.spec:
            return self.spec[key]
        fight = self.spec.get("fight")
        if isinstance(fight, dict) and key in fight:
            return fight[key]
        return default

    @property
    def alpha(self) -> float:
        return float(self.get("alpha", 0.05))

    @property
    def reference(self) -> str | None:
        return self.get("reference")

    @property
    def primary(self) -> str:
        """The results.csv column of the primary metric ("accuracy" → test_accuracy)."""
        pm = str(self.get("primary_metric", "accuracy"))
        for cand in (f"test_{pm}", pm):
            if cand in self.columns:
                return cand
        return "test_accuracy"

    @property
    def spec_contenders(self) -> list[dict[str, Any]]:
        cs = self.spec.get("contenders", self.spec.get("contender", []))
        return [c for c in cs if isinstance(c, dict) and "name" in c]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return [c for c in self.spec.get("claims", self.spec.get("claim", [])) if isinstance(c, dict)]

    def section(self, name: str) -> dict[str, Any] | None:
        s = self.get(name)
        return s if isinstance(s, dict) and s else None

    @property
    def base(self) -> dict[str, Any]:
        return dict(self.get("base") or {})

    # --- results access ---------------------------------------------------------------------
    def phase(self, phase: str, contender: str | None = None) -> list[dict[str, str]]:
        return [r for r in self.rows if r.get("phase") == phase and (contender is None or r.get("contender") == contender)]

    def width_choices(self, contender: str | None = None) -> list[dict[str, Any]]:
        """How each width of a sweep chose its hyperparameters: per contender, width and split (its
        ``(repeat, fold)``; one split without resampling), ``{"contender", "hidden", "split",
        "point", "lr", "candidates": {point: mean validation accuracy}}``, a point being the
        run's :data:`WIDTH_POINT` values (learning rate, DREG λ, regularizer strength). ``point``
        is the candidate whose runs (the split's seeds) have the highest mean validation accuracy
        (a missing or non-finite one counts 0, as in tuning), ties to the smaller values:
        validation alone decides. A sweep without ``lr_factors``/``reg_factors`` has one
        candidate everywhere."""
        groups: dict[tuple, dict[tuple, list[float]]] = {}
        for r in self.phase("width", contender):
            g = (r.get("contender"), r.get("hidden"), *(str(r.get(c) or "") for c in _SPLIT_COLS))
            v = to_number(r.get("val_accuracy"))
            groups.setdefault(g, {}).setdefault(width_point(r), []).append(v if v is not None else 0.0)
        out = []
        for (name, hidden, *split), by_point in groups.items():
            cand = {p: float(np.mean(v)) for p, v in by_point.items()}
            best = max(cand, key=lambda p: (cand[p], *(-(x or 0.0) for x in p)))
            out.append({"contender": name, "hidden": hidden, "split": tuple(split), "point": best, "lr": best[0],
                        "candidates": cand})
        return out

    def width_rows(self, contender: str | None = None) -> list[dict[str, str]]:
        """The "width" rows the size views read: those at each width's validation-chosen
        hyperparameters (:meth:`width_choices`), in results.csv order."""
        keep = {(c["contender"], c["hidden"], c["split"], c["point"]) for c in self.width_choices(contender)}
        return [r for r in self.phase("width", contender)
                if (r.get("contender"), r.get("hidden"), tuple(str(r.get(c) or "") for c in _SPLIT_COLS),
                    width_point(r)) in keep]

    def contenders(self) -> list[str]:
        """Contenders with final runs: spec order first, then any others in first-seen order."""
        seen = {r.get("contender") for r in self.phase("final")}
        order = [c["name"] for c in self.spec_contenders if c["name"] in seen]
        for r in self.phase("final"):
            if r.get("contender") not in order:
                order.append(r["contender"])
        return order

    def label(self, name: str) -> str:
        for c in self.spec_contenders:
            if c["name"] == name and c.get("label"):
                return str(c["label"])
        for r in self.rows:
            if r.get("contender") == name and r.get("label"):
                return r["label"]
        return name

    def config_of(self, name: str) -> dict[str, Any]:
        """The contender's config overrides (spec.json ``configs`` if present, else its own)."""
        configs = self.spec.get("configs") or {}
        if name in configs and isinstance(configs[name], dict):
            return configs[name]
        for c in self.spec_contenders:
            if c["name"] == name:
                return c.get("config") or {k: v for k, v in c.items() if k not in ("name", "label", "tune")}
        return {}

    def by_seed(self, rows: list[dict[str, str]], metric: str) -> dict[int, float]:
        """seed → value of ``metric`` (mean if a seed repeats), empty and non-finite cells skipped."""
        acc: dict[int, list[float]] = {}
        for r in rows:
            v, s = to_number(r.get(metric)), to_number(r.get("seed"))
            if v is not None and s is not None:
                acc.setdefault(int(s), []).append(v)
        return {s: float(np.mean(v)) for s, v in sorted(acc.items())}

    @property
    def resampled(self) -> bool:
        """True when the runs are repeated-CV splits: ``repeat``/``fold`` columns with values in some
        row, and ``n_train``/``n_test`` (the v2 runner writes the columns for every fight; a fight
        on the dataset's own split leaves repeat/fold empty)."""
        if not (any(c in self.columns for c in _SPLIT_COLS)
                and all(c in self.columns for c in ("n_train", "n_test"))):
            return False
        return any(str(r.get(c, "")).strip() not in ("", "None", "nan") for r in self.rows for c in _SPLIT_COLS)

    def by_split(self, rows: list[dict[str, str]], metric: str) -> dict[tuple, float]:
        """The units of the paired tests: ``(repeat, fold)`` → the mean of ``metric`` over that
        split's runs (its seeds) under repeated CV; ``(seed,)`` → value (as :meth:`by_seed`) without.

        A split, not a (seed, split) run, is the unit of Nadeau–Bengio's corrected test: the
        seeds of one split share its training and test rows, so counting them as separate splits
        would count seed noise as split-to-split spread and give ``J − 1`` degrees of freedom for
        fewer than ``J`` splits.
        """
        if not self.resampled:
            return {(s,): v for s, v in self.by_seed(rows, metric).items()}
        acc: dict[tuple, list[float]] = {}
        for r in rows:
            v = to_number(r.get(metric))
            if v is not None:
                key = tuple(to_number(r.get(c)) for c in _SPLIT_COLS)
                acc.setdefault(key, []).append(v)
        return {k: float(np.mean(v)) for k, v in sorted(acc.items(), key=lambda kv: [(x is None, x or 0) for x in kv[0]])}

    def summary(self, rows: list[dict[str, str]], metric: str) -> dict[str, Any] | None:
        """Mean, std and 95% interval of ``metric`` over the units of :meth:`by_split` — seeds, or
        under repeated CV splits (each its seeds' mean) with Nadeau–Bengio's corrected interval;
        None without values."""
        from .stats import summarize_splits

        vals = list(self.by_split(rows, metric).values())
        return summarize_splits(vals, self.split_sizes(rows)) if vals else None

    def split_sizes(self, rows: list[dict[str, str]]) -> tuple[float, float] | None:
        """Mean ``(n_train, n_test)`` of repeated-CV rows for Nadeau–Bengio's correction, or None
        (plain seeds: no correction). ``n_train`` counts every row of the split that is not a test
        row — the rows that train plus the validation rows carved from them, which the learner
        also reads (early stopping, tuning) — so k-fold CV gives ``n_test/n_train = 1/(k − 1)``
        (Bouckaert & Frank 2004)."""
        if not self.resampled:
            return None
        tr = [v + (to_number(r.get("n_val")) or 0.0) for r, v in ((r, to_number(r.get("n_train"))) for r in rows) if v]
        te = [v for v in (to_number(r.get("n_test")) for r in rows) if v]
        return (float(np.mean(tr)), float(np.mean(te))) if tr and te else None

    def values(self, phase: str, contender: str, metric: str) -> dict[int, float]:
        return self.by_seed(self.phase(phase, contender), metric)

    def adversarial_columns(self) -> list[str]:
        cols = [c for c in self.columns if ADV_COLUMN.match(c)]
        return sorted(cols, key=lambda c: (ATTACKS.index(ADV_COLUMN.match(c).group(1)), float(ADV_COLUMN.match(c).group(2))))

    def main_metrics(self) -> list[str]:
        """Metric columns of the main table present in results.csv with some final value."""
        i = MAIN_METRICS.index("corruption_accuracy") + 1
        cand = list(MAIN_METRICS[:i]) + self.adversarial_columns() + list(MAIN_METRICS[i:])
        if self.primary not in cand:
            cand.insert(0, self.primary)
        finals = self.phase("final")
        return [m for m in cand if m in self.columns and any(to_number(r.get(m)) is not None for r in finals)]

    def seed0_run(self, contender: str, phase: str = "final") -> dict[str, Any] | None:
        """The run record of the contender's lowest seed (seed 0 when present) in ``phase``; under
        repeated CV, of the first split (lowest ``cv_repeat``, then ``cv_fold``: r0f0 when present),
        so that every contender's plotted trace comes from the same training data — not from
        whichever split's run file sorts first."""
        cands = [r for r in self.runs if r.get("phase") == phase and r.get("contender") == contender]
        if not cands:
            return None

        def order(r: dict[str, Any]) -> tuple:
            cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
            split = tuple(to_number(cfg.get(c)) for c in ("cv_repeat", "cv_fold"))
            return (r.get("seed") is None, r.get("seed") or 0, *((x is None, x or 0) for x in split))

        return min(cands, key=order)


#: the results.csv columns a width sweep varies at each width (``[accuracy_matched] lr_factors``,
#: ``reg_factors``): a run's point is their values
WIDTH_POINT = ("lr", "dreg", "reg_strength")


def width_point(row: dict[str, str]) -> tuple:
    """A width run's hyperparameter point: its :data:`WIDTH_POINT` values (None where empty)."""
    return tuple(to_number(row.get(c)) for c in WIDTH_POINT)


def to_number(cell: Any) -> float | None:
    """A csv cell as a finite float, or None (empty, 'None', non-numeric, nan, inf)."""
    if cell is None or isinstance(cell, bool):
        return None
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a results.csv; DataError for a file that is not one (binary, garbled)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [dict(r) for r in reader]
            columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not a readable results.csv (expected UTF-8 CSV text: {e})") from None
    except OSError as e:
        raise DataError(f"{path} cannot be read: {e.strerror or e}") from None
    for need in ("phase", "contender", "seed"):
        if need not in columns:
            raise ConfigError(f"{path}: expected a {need!r} column, got {', '.join(map(repr, columns[:8])) or 'no header'}")
    if not rows:  # a fight has at least one final run: a header alone is a damaged file, not "no results"
        raise DataError(f"{path} holds a header and no runs: expected one row per run (rerun the fight command, "
                        "which rewrites it from runs/)")
    bad = [i + 2 for i, r in enumerate(rows) if None in r or any(v is None for v in r.values())]
    if bad:
        raise DataError(f"{path}: line(s) {', '.join(map(str, bad[:5]))} do not have the header's "
                        f"{len(columns)} fields: the file is truncated or garbled")
    return columns, rows


def _spec_or_empty(folder: Path) -> dict[str, Any]:
    """``folder/spec.json`` as a dict, ``{}`` when it is missing or not a JSON object."""
    try:
        spec = json.loads((folder / "spec.json").read_text())
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def folder_kind(folder: str | Path, spec: dict[str, Any] | None = None) -> str:
    """What made ``folder``: ``"stability"`` (a stability map: ``stability.csv``), ``"finetune"``
    (a fine-tune fight: ``tuning.csv`` and a spec with a ``baseline`` head) or ``"fight"``;
    ``spec``: its spec.json when already read."""
    folder = Path(folder)
    if (folder / "stability.csv").is_file():
        return "stability"
    if (folder / "tuning.csv").is_file() and "baseline" in (_spec_or_empty(folder) if spec is None else spec):
        return "finetune"
    return "fight"


def _not_a_fight(folder: Path) -> str | None:
    """Why ``folder`` is a stability map or fine-tune fight rather than a fight (their reports are
    rewritten by their own command, which reuses the stored runs), or None."""
    spec = _spec_or_empty(folder)
    kind = folder_kind(folder, spec)
    if kind == "fight":
        return None
    what = {"stability": "a stability map", "finetune": "a fine-tune fight"}[kind]
    command = spec.get("command") or f"chainzrule {kind} SPEC --out {folder}"
    command = re.sub(r"--out(=|\s+)\S+", f"--out {shlex.quote(str(folder))}", command)  # the folder given, wherever it was made
    return (f"{folder} is {what}, not a `chainzrule fight` folder: its report is rewritten by its own command, "
            f"which reuses the stored runs: {command}")


def load_fight(folder: str | Path) -> Fight:
    """Load a fight folder; ConfigError if it lacks results.csv or spec.json, or is a stability map
    or fine-tune fight (whose reports their own commands rewrite)."""
    folder = Path(folder)
    why = _not_a_fight(folder)
    if why is not None:
        raise ConfigError(why)
    missing = [n for n in ("results.csv", "spec.json") if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder} is not a fight folder: expected results.csv and spec.json, missing {', '.join(missing)}")
    try:
        spec = json.loads((folder / "spec.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{folder / 'spec.json'} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{folder / 'spec.json'}: expected a JSON object, got {type(spec).__name__}")
    columns, rows = _read_results(folder / "results.csv")
    keys = {r.get("key") for r in rows}  # only this results.csv's runs: runs/ may keep an earlier spec's
    runs, bad = [], 0
    for p in sorted((folder / "runs").glob("*.json")) if (folder / "runs").is_dir() else []:
        if p.stem not in keys:
            continue
        try:
            rec = json.loads(p.read_text())
            if isinstance(rec, dict):
                runs.append(rec)
            else:
                bad += 1
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            bad += 1
    tuning = None
    if (folder / "tuning.json").is_file():  # written atomically by the fight: damaged means refused, not "0 trials"
        try:
            tuning = json.loads((folder / "tuning.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{folder / 'tuning.json'} is not valid JSON ({e}): rerun the fight command, which "
                              "rewrites it from the stored runs") from None
        if not isinstance(tuning, dict):
            raise ConfigError(f"{folder / 'tuning.json'}: expected a JSON object, got {type(tuning).__name__}")
    return Fight(folder, spec, columns, rows, runs, tuning, bad)


def as_fight(folder_or_fight: str | Path | Fight) -> Fight:
    """The :class:`Fight` itself, or the folder loaded by :func:`load_fight`."""
    return folder_or_fight if isinstance(folder_or_fight, Fight) else load_fight(folder_or_fight)


def summary_of(values: dict[int, float] | list[float]) -> dict[str, Any] | None:
    vals = list(values.values()) if isinstance(values, dict) else list(values)
    return summarize(vals) if vals else None
