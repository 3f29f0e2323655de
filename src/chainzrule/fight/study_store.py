"""``--storage URL``: the fight's Optuna studies kept in an RDB (``sqlite:///PATH``,
``postgresql://...``), where ``optuna-dashboard URL`` shows them live and a restarted driver
finds them again.

The tuner itself samples from an in-memory study seeded with ``tune_seed`` and replayed from
the run files (the fight's resume rule: every finished trial is read back, none is trained
again), because a TPE sampler reloaded over a stored study would not draw the trials an
uninterrupted fight draws, and a fight resumed elsewhere must give the same results.csv. Each
finished trial is then added to the stored study (``optuna.create_study(storage=...,
load_if_exists=True)``, one study per contender, named ``<fight>:<contender>:<spec hash>``)
unless that study holds it already (matched by trial number): after a restart the stored study
continues where it stopped, without duplicates.
"""

from __future__ import annotations

from typing import Any

from ..config import content_hash
from ..errors import ConfigError


def open_storage(url: str | None):
    """The Optuna RDB storage at ``url`` (None: no storage); one ConfigError if it cannot be opened."""
    if url is None:
        return None
    import optuna

    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL: expected sqlite:///PATH or postgresql://...")
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - sqlalchemy/driver errors: any of them means "cannot open"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--storage {url}: cannot be opened ({type(e).__name__}: {msg[:200]})") from None


class StudyMirror:
    """Adds every told trial of the tuner to the stored study of its contender."""

    def __init__(self, storage, spec) -> None:
        self.storage = storage
        d = {k: v for k, v in spec.to_dict().items() if k not in ("command", "source", "claims", "description")}
        self.prefix = f"{spec.name}{'-quick' if spec.quick else ''}"
        self.tag = content_hash(d, 8)
        self.studies: dict[str, Any] = {}
        self.known: dict[str, set[int]] = {}

    def _study(self, contender: str):
        import optuna

        if contender not in self.studies:
            study = optuna.create_study(storage=self.storage, study_name=f"{self.prefix}:{contender}:{self.tag}",
                                        direction="maximize", load_if_exists=True)
            self.studies[contender] = study
            self.known[contender] = {t.user_attrs.get("trial") for t in study.get_trials(deepcopy=False)}
        return self.studies[contender]

    def tell(self, contender: str, number: int, trial, score: float, key: str) -> None:
        import optuna

        study = self._study(contender)
        if number in self.known[contender]:
            return
        study.add_trial(optuna.trial.create_trial(params=trial.params, distributions=trial.distributions, value=score,
                                                  user_attrs={"trial": number, "key": key}))
        self.known[contender].add(number)
