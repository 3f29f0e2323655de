"""Entry points: :func:`train_batched` (configs in, one result per config out) and
:func:`execute_group` (the fight runner's side: run a group and store every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..config import TrainConfig
from ..data.splits import Splits
from ..errors import ConfigError
from ..train import RunResult, head_kind, load_data, load_splits
from ..train.device import available_device
from .grouping import PER_MEMBER_FIELDS, batch_key, batchable
from .stack import StackedRuns

__all__ = ["train_batched", "execute_group"]


def train_batched(cfgs: Sequence[TrainConfig], splits_per_cfg: Sequence[Splits] | None = None,
                  progress: bool = False, test: bool = True, engine: str = "auto") -> list[RunResult]:
    """Train every config of ``cfgs`` (one batch: all :func:`batchable`, all with the same
    :func:`batch_key`) and return one :class:`~chainzrule.train.RunResult` per config, in order,
    each what ``train(cfg, splits, test=test)`` returns (timing fields aside: see module doc).

    ``splits_per_cfg`` gives each run its data (the validation carve depends on the seed); by
    default they are loaded (the dataset once). Members whose splits differ in size (a carve that
    rounds differently) are trained in separate sub-batches. ``engine``: "grouped" (the stacked
    forward written out with batched matmuls; chainzrule/mlp models), "vmap"
    (``torch.func.vmap`` of ``functional_call``; not igp/jr) or "auto" (grouped where it applies).
    """
    cfgs = list(cfgs)
    if not cfgs:
        return []
    for c in cfgs:
        why = batchable(c)
        if why is not None:
            raise ConfigError(f"cannot batch this run: {why}; train it with chainzrule.train.train")
    keys = {batch_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ConfigError("cannot batch runs whose configs differ in more than "
                          f"{', '.join(PER_MEMBER_FIELDS)} (and DREG/regularizer on or off): group them with "
                          "chainzrule.batched.eligible_groups")
    available_device(cfgs[0].device)  # one device per batch (batch_key): refused before any data is loaded
    if splits_per_cfg is None:
        data = load_data(cfgs[0], progress)
        splits_per_cfg = [load_splits(c, data) for c in cfgs]
    splits_per_cfg = list(splits_per_cfg)
    if len(splits_per_cfg) != len(cfgs):
        raise ConfigError(f"expected one Splits per config ({len(cfgs)}), got {len(splits_per_cfg)}")
    parts: dict[tuple, list[int]] = {}
    for i, sp in enumerate(splits_per_cfg):
        if head_kind(cfgs[i], sp.task) != "linear":
            raise ConfigError(f"cannot batch a run with an ordinal head (task {sp.task!r}); train it with "
                              "chainzrule.train.train")
        shape = (tuple(sp.X_train.shape), tuple(sp.X_val.shape), sp.num_classes, sp.task)
        parts.setdefault(shape, []).append(i)
    out: list[RunResult | None] = [None] * len(cfgs)
    for idx in parts.values():
        runs = StackedRuns([cfgs[i] for i in idx], [splits_per_cfg[i] for i in idx], progress, engine).run(test)
        for i, r in zip(idx, runs):
            out[i] = r
    return out  # type: ignore[return-value]


def execute_group(tasks: Sequence, runs_dir: Path) -> list[dict]:
    """Run the ``tasks`` of one :func:`eligible_groups` group and store each as ``runs/<key>.json``
    exactly as ``runner.execute`` does (same record, same atomic write); runs whose file exists
    are read, not repeated. Returns the records in the order of ``tasks``. A group of one, or of
    runs that cannot be batched, is executed run by run by ``runner.execute``."""
    from ..fight import executor  # the runner imports this module: import it when called

    runs_dir = Path(runs_dir)
    records: dict[str, dict] = {}
    todo = []
    for t in tasks:
        path = runs_dir / f"{t.key}.json"
        if path.exists():
            records[t.key] = executor.load_record(path)
        elif t.key not in {u.key for u in todo}:
            todo.append(t)
    splits = []
    if len(todo) > 1 and all(batchable(t.config) is None for t in todo) and \
            len({batch_key(t.config, t.test) for t in todo}) == 1:
        splits = [executor.splits_for(t.config) for t in todo]
        if any(head_kind(t.config, sp.task) != "linear" for t, sp in zip(todo, splits)):
            splits = []  # an ordinal task: its heads are not batched
    if not splits:
        for t in todo:
            records[t.key] = executor.execute(t, runs_dir)
    else:
        runs = train_batched([t.config for t in todo], splits, progress=False, test=todo[0].test)
        for t, run, sp in zip(todo, runs, splits):
            record = executor.make_record(t, run, sp)
            executor.atomic_json(runs_dir / f"{t.key}.json", record)
            records[t.key] = record
    return [records[t.key] for t in tasks]
