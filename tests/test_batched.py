"""Batched training: every member of a stacked batch equals the run trained alone (float64, 1e-9)."""

import json
import math

import pytest
import torch

from chainzrule.batched import batch_key, batchable, eligible_groups, execute_group, train_batched
from chainzrule.config import TrainConfig
from chainzrule.data.splits import make_splits
from chainzrule.errors import ConfigError
from chainzrule.fight.runner import Task, execute
from chainzrule.fight.runner import TIMING_COLUMNS as FIGHT_TIMING

# timing differs between any two executions; peak_memory_mb is the process's lifetime peak (train()
# reports it, fight records drop it)
TIMING_COLUMNS = (*FIGHT_TIMING, "peak_memory_mb")
from chainzrule.train import synthetic_dataset, train

DATA = synthetic_dataset(n=300, d=6, classes=3)  # 240 train (192 after the carve), 60 test
BASE = dict(dataset="synthetic", hidden=(8, 8), epochs=3, batch_size=64, dtype="float64", diag_examples=20)
TOL = 1e-9


def _flat(d, pre=""):
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in _flat(val, f"{pre}.{key}").items()}
    if isinstance(d, (list, tuple)):
        return {k: v for i, val in enumerate(d) for k, v in _flat(val, f"{pre}[{i}]").items()}
    return {pre: d}


def _close(a, b) -> bool:
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= TOL * max(1.0, abs(a))  # relative only for huge values (diverged runs)
    return a == b


def assert_same_run(ref, got):
    """Weights, every result field (timing aside) and the gradient-norm trace agree to 1e-9."""
    sa, sb = ref.model.state_dict(), got.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype == torch.float64
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=TOL, equal_nan=True, msg=k)
    fa, fb = _flat(ref.result), _flat(got.result)
    assert fa.keys() == fb.keys()
    for k in fa:
        if k.split(".")[1] in TIMING_COLUMNS:
            continue
        assert _close(fa[k], fb[k]), (k, fa[k], fb[k])
    assert len(ref.grad_norms) == len(got.grad_norms)
    assert all(_close(a, b) for a, b in zip(ref.grad_norms, got.grad_norms))


def _check(cfgs, engine="auto", test=True):
    splits = [make_splits(DATA, c.val_fraction, c.seed) for c in cfgs]
    ref = [train(c, sp, progress=False, test=test) for c, sp in zip(cfgs, splits)]
    got = train_batched(cfgs, splits, test=test, engine=engine)
    for r, g in zip(ref, got):
        assert_same_run(r, g)
    return got


def test_chainzrule_dreg_seeds_equal_unbatched():
    got = _check([TrainConfig(**BASE, model="chainzrule", dreg=0.01, seed=s, robustness=True, adv_eps=(0.1,),
                              pgd_steps=2, corruption_examples=20) for s in (0, 1, 2)])
    # the record names its robustness rule (results/README: older run files counted FGSM/PGD otherwise)
    assert {g.result["robustness"]["attack"]["robust"] for g in got} == {"classified correctly clean and attacked"}


def test_mlp_seeds_equal_unbatched():
    _check([TrainConfig(**BASE, model="mlp", activation="gelu", seed=s) for s in (0, 1, 2)])


def test_per_member_hyperparameters_equal_unbatched():
    """Different lr, coefficient-lr scale, λ and λ schedule per member in one batch."""
    members = [(0, 1e-3, 1.0, 0.01, "constant"), (1, 3e-3, 0.3, 0.03, "cosine"), (2, 1e-2, 2.0, 0.001, "warmup")]
    _check([TrainConfig(**BASE, model="chainzrule", seed=s, lr=lr, coef_lr_scale=cs, dreg=d, dreg_schedule=sch,
                        dreg_final=1e-4, dreg_warmup=0.2) for s, lr, cs, d, sch in members])


def test_resampling_cells_equal_unbatched():
    """Members from different cross-validation cells (fold and repeat differ: each brings its own
    data) in one batch, as the fight runner groups a tuning round's first seeds."""
    from chainzrule.train import load_splits

    cfgs = [TrainConfig(**BASE, model="chainzrule", dreg=0.01, seed=s, lr=lr, cv_folds=5, cv_fold=f, cv_repeat=r)
            for s, lr, f, r in ((0, 1e-3, 0, 0), (0, 3e-3, 1, 0), (1, 1e-2, 4, 3))]
    assert len({batch_key(c) for c in cfgs}) == 1
    splits = [load_splits(c, DATA) for c in cfgs]
    assert not torch.equal(splits[0].X_train, splits[1].X_train)
    ref = [train(c, sp, progress=False) for c, sp in zip(cfgs, splits)]
    for r, g in zip(ref, train_batched(cfgs, splits)):
        assert_same_run(r, g)


def test_adamw_decoupled_decay_equal_unbatched():
    """reg "wd" under AdamW (decay on the weight matrices only, in the optimizer): per-member lr and
    decay strength, a member without decay, both engines."""
    members = [(0, 1e-3, 1e-2), (1, 3e-3, 0.3), (2, 1e-2, 0.0)]
    for engine in ("grouped", "vmap"):
        _check([TrainConfig(**BASE, model="mlp", activation="relu", reg="wd", optimizer="adamw", seed=s, lr=lr,
                            reg_strength=wd) for s, lr, wd in members[:2]], engine=engine, test=False)
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.01, reg="wd", optimizer="adamw", seed=s, lr=lr,
                        reg_strength=wd) for s, lr, wd in members])


def test_spectral_norm_with_logit_temperature_equal_unbatched():
    """reg "sn" (every linear map normalized by its own power iteration, u and v per member) with a
    per-member logit temperature τ and lr, early stopping (best epoch's u, v restored) and the
    test-time evaluation; ReLU and ChainzRule."""
    members = [(0, 1e-3, 1.0), (1, 1e-2, 4.0), (2, 3e-2, 16.0)]
    _check([TrainConfig(**{**BASE, "epochs": 4}, model="mlp", activation="relu", reg="sn", seed=s, lr=lr,
                        logit_scale=tau, patience=1) for s, lr, tau in members])
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.0, reg="sn", seed=s, lr=lr, logit_scale=tau)
            for s, lr, tau in members[:2]], test=False)
    with pytest.raises(ConfigError, match="vmap"):
        _check([TrainConfig(**BASE, model="mlp", reg="sn", seed=s) for s in (0, 1)], engine="vmap")


def test_spectral_norm_layer_gains_equal_unbatched():
    """Per-member ``sn_gain`` (each hidden map g · W / σ), mixed with gain 1 in one batch, with
    per-member temperatures; SiLU and ChainzRule."""
    members = [(0, 3e-3, 1.0, 1.0), (1, 1e-2, 4.0, 0.5), (2, 3e-2, 2.5, 8.0)]
    cfgs = [TrainConfig(**BASE, model="mlp", activation="silu", reg="sn", seed=s, lr=lr, sn_gain=g, logit_scale=tau)
            for s, lr, g, tau in members]
    assert len({batch_key(c) for c in cfgs}) == 1 and all(batchable(c) is None for c in cfgs)  # one batch
    _check([TrainConfig(**{**BASE, "epochs": 4}, model="mlp", activation="silu", reg="sn", seed=s, lr=lr,
                        sn_gain=g, logit_scale=tau, patience=1) for s, lr, g, tau in members])
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.0, reg="sn", seed=s, lr=lr, sn_gain=g)
            for s, lr, g, _ in members[1:]], test=False)
    assert batchable(TrainConfig(**BASE, model="chainzrule", reg="sn")) == "spectral norm with DREG is not batched"


def test_vmap_engine_equal_unbatched():
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.01, seed=s, lr=lr) for s, lr in ((0, 1e-3), (1, 1e-2))],
           engine="vmap", test=False)


def test_sgd_cosine_weight_decay_relu_dreg():
    _check([TrainConfig(**BASE, model="mlp", activation="relu", dreg=0.01, reg="wd", reg_strength=r, optimizer="sgd",
                        lr_schedule="cosine", lr=lr, seed=s) for s, r, lr in ((0, 1e-3, 0.01), (1, 1e-2, 0.03))],
           test=False)


def test_adamw_constant_tanh_range_control_no_dreg():
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.0, range_control="tanh", optimizer="adamw",
                        lr_schedule="constant", seed=s) for s in (0, 1)], test=False)


def test_input_gradient_regularizers_equal_unbatched():
    """igp and jr (double backward; jr's projections from each member's own seeded generator)."""
    _check([TrainConfig(**BASE, model="mlp", activation="gelu", reg="igp", reg_strength=r, seed=s)
            for s, r in ((0, 0.1), (1, 1.0))], test=False)
    _check([TrainConfig(**BASE, model="chainzrule", dreg=0.01, reg="jr", reg_strength=r, jr_projections=2, seed=s)
            for s, r in ((0, 0.1), (1, 1.0))], test=False)
    with pytest.raises(ConfigError, match="vmap engine"):
        train_batched([TrainConfig(**BASE, model="mlp", reg="igp", reg_strength=0.1, seed=s) for s in (0, 1)],
                      [make_splits(DATA, 0.1, s) for s in (0, 1)], engine="vmap")


def test_early_stopping_and_divergence_per_member():
    """Members stop at different epochs (patience, a diverging lr) and leave the stack; the rest
    go on; each restores its own best epoch."""
    cfg = dict(BASE, epochs=5, model="chainzrule", dreg=0.01, range_control="none", degree=5)
    got = _check([TrainConfig(**cfg, seed=0, lr=1e4, patience=0), TrainConfig(**cfg, seed=1, lr=1e-3, patience=1),
                  TrainConfig(**cfg, seed=2, lr=3e-3, patience=0)], test=False)
    runs = [g.result["epochs_run"] for g in got]
    assert runs[0] < 5 and got[0].result["diverged"] and runs[2] == 5


@pytest.mark.parametrize("engine,input_norm", [("auto", "none"), ("vmap", "none"), ("auto", "layernorm")])
def test_kan_seeds_equal_unbatched(engine, input_norm):
    """KAN through the grouped engine (plain KAN, the default) and through vmap (forced, or behind
    an input LayerNorm), evaluation and APGD included."""
    _check([TrainConfig(**BASE, model="kan", input_norm=input_norm, seed=s, lr=lr, robustness=True, adv_eps=(0.1,),
                        pgd_steps=2, apgd_steps=10, corruption_examples=20)
            for s, lr in ((0, 1e-3), (1, 3e-3), (2, 1e-2))], engine=engine)


def test_kan_engine_choice():
    """A plain KAN takes the grouped engine; one with a loss-side regularizer or an input LayerNorm
    vmap; forcing "grouped" on the latter is refused with the reason."""
    from chainzrule.batched.stack import StackedRuns

    def engine_of(engine="auto", **kw):
        cfgs = [TrainConfig(**BASE, model="kan", seed=s, **kw) for s in (0, 1)]
        return StackedRuns(cfgs, [make_splits(DATA, c.val_fraction, c.seed) for c in cfgs], False, engine).engine

    assert engine_of() == "grouped"
    assert engine_of(reg="wd", reg_strength=1e-3) == "vmap"
    assert engine_of(input_norm="layernorm") == "vmap"
    with pytest.raises(ConfigError, match="plain KAN"):
        engine_of("grouped", input_norm="layernorm")


def test_kan_with_l2_penalty_equals_unbatched():
    _check([TrainConfig(**BASE, model="kan", reg="wd", reg_strength=1e-3, seed=s) for s in (0, 1)])


def test_refuses_what_it_cannot_batch():
    for cfg in (TrainConfig(**BASE, model="kan", reg="sn"), TrainConfig(**BASE, model="kan", logit_scale=4.0),
                TrainConfig(**BASE, model="chainzrule", reg="sn"), TrainConfig(**BASE, model="logreg")):
        assert batchable(cfg) is not None
        with pytest.raises(ConfigError, match="cannot batch"):
            train_batched([cfg, cfg.replace(seed=1)])
    with pytest.raises(ConfigError, match="differ in more than"):
        train_batched([TrainConfig(**BASE, model="mlp"), TrainConfig(**{**BASE, "hidden": (4,)}, model="mlp")])


def _task(phase="final", test=True, **cfg):
    c = TrainConfig(**{**BASE, "model": "mlp", **cfg})
    return Task(phase, c.model, c, test, c.seed)


def test_eligible_groups():
    seeds = [_task(seed=s) for s in range(3)]
    lrs = [_task(seed=0, lr=lr) for lr in (1e-3, 1e-2)]
    other = [_task(hidden=(4,)), _task(model="kan"), _task(reg="sn"), _task(model="svm"), _task(test=False, seed=5)]
    dreg = [_task(dreg=0.01, seed=s) for s in range(2)]
    dup = _task(phase="lambda", seed=1)  # the same run as seeds[1], asked by another phase
    groups = eligible_groups(seeds + lrs + other + dreg + [dup])
    assert groups[0] == seeds + lrs  # seed and lr differ only: one batch
    assert [len(g) for g in groups[1:]] == [1, 1, 1, 1, 1, 2, 1]
    assert groups[-2] == dreg and groups[-1] == [dup]  # DREG on vs off: separate batches
    assert sorted(t.key for g in groups for t in g) == sorted(t.key for t in seeds + lrs + other + dreg + [dup])
    assert [len(g) for g in eligible_groups(seeds + lrs, max_size=2)] == [2, 2, 1]
    assert batch_key(seeds[0].config) == batch_key(lrs[1].config) != batch_key(dreg[0].config)


def test_execute_group_stores_the_record_runner_execute_stores(tmp_path):
    base = dict(epochs=1, batch_size=256, hidden=(4,), dtype="float64", dataset="synthetic")
    tasks = [_task(**base, seed=s) for s in (0, 1)] + [_task(**base, seed=0, lr=1e-2)]
    batched_dir, single_dir = tmp_path / "b", tmp_path / "s"
    batched_dir.mkdir(), single_dir.mkdir()
    recs = execute_group(tasks, batched_dir)
    refs = [execute(t, single_dir) for t in tasks]
    for t, rec, ref in zip(tasks, recs, refs):
        stored = json.loads((batched_dir / f"{t.key}.json").read_text())
        assert stored == json.loads(json.dumps(rec))
        assert rec.keys() == ref.keys() and rec["key"] == t.key
        fa, fb = _flat(ref), _flat(rec)
        assert fa.keys() == fb.keys()
        timing = {f".result.{c}" for c in TIMING_COLUMNS}
        assert all(_close(fa[k], fb[k]) for k in fa if k not in timing), t
    # resume: existing files are read back, not rerun
    (batched_dir / f"{tasks[0].key}.json").write_text(json.dumps({**recs[0], "marker": 1}))
    again = execute_group(tasks, batched_dir)
    assert again[0]["marker"] == 1 and again[1] == json.loads(json.dumps(recs[1]))


def test_execute_group_falls_back_for_ordinal_tasks(tmp_path, monkeypatch):
    """An ordinal dataset (CLM head) is known only once the data is loaded: run by run then."""
    import dataclasses

    from chainzrule.fight import executor

    real = executor.splits_for
    monkeypatch.setattr(executor, "splits_for", lambda cfg: dataclasses.replace(real(cfg), task="ordinal"))
    tasks = [_task(epochs=1, batch_size=256, hidden=(4,), seed=s) for s in (0, 1)]
    recs = execute_group(tasks, tmp_path)
    assert [r["key"] for r in recs] == [t.key for t in tasks]
    assert all((tmp_path / f"{t.key}.json").exists() for t in tasks)


def test_robustness_is_attacked_for_all_members_at_once_and_equals_alone(monkeypatch):
    """APGD of a batch runs once through the stacked forward (never member by member), with each
    member's own test cell, ε list (one member without robustness) and logit temperature; every
    record equals the run trained and attacked alone."""
    from chainzrule.train import load_splits
    import chainzrule.apgd as apgd_mod

    members = [(0, 0, (0.1, 0.3), True, 2.0), (1, 1, (0.3,), True, 1.0), (2, 2, (0.1,), True, 0.5), (3, 3, (0.1,), False, 1.0)]
    cfgs = [TrainConfig(**BASE, model="mlp", activation="relu", seed=s, cv_folds=5, cv_fold=f, adv_eps=eps,
                        robustness=rob, pgd_steps=2, apgd_steps=12, logit_scale=tau, corruption_examples=40)
            for s, f, eps, rob, tau in members]
    assert len({batch_key(c) for c in cfgs}) == 1
    splits = [load_splits(c, DATA) for c in cfgs]
    ref = [train(c, sp, progress=False) for c, sp in zip(cfgs, splits)]
    calls = []
    real = apgd_mod.apgd
    monkeypatch.setattr(apgd_mod, "apgd_accuracy", lambda *a, **k: pytest.fail("APGD ran member by member"))
    monkeypatch.setattr("chainzrule.batched.attack.apgd", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    got = train_batched(cfgs, splits)
    for r, g in zip(ref, got):
        assert_same_run(r, g)
    assert calls and "apgd_0.3" in got[0].result["robustness"] and "robustness" not in got[3].result
    assert {k for k in got[1].result["robustness"] if k.startswith("apgd")} == {"apgd_0.3"}


def test_members_apgd_refuses_a_frozen_member_as_alone_and_attacks_the_others():
    """A member whose input gradient is zero everywhere gets the NoInputGradient it raises alone;
    the other member's accuracy is its own."""
    from chainzrule.apgd import apgd_accuracy
    from chainzrule.attacks import NoInputGradient
    from chainzrule.batched.attack import members_apgd_accuracy

    torch.manual_seed(0)
    W = torch.randn(2, 3, 4, dtype=torch.float64)
    W[1] = 0.0  # member 1 ignores its input
    b = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)  # member 1 always says class 0
    xs = [torch.rand(30, 4, dtype=torch.float64), torch.rand(25, 4, dtype=torch.float64)]
    ys = [torch.randint(0, 3, (30,)), torch.zeros(25, dtype=torch.long)]
    got = members_apgd_accuracy(lambda X: torch.baddbmm(b[:, None, :], X, W.transpose(1, 2)), xs, ys, 0.1,
                                steps=15, input_range=(0.0, 1.0), seeds=[4, 5], batch_size=16)
    net = lambda v: v @ W[0].T + b[0]
    assert got[0] == apgd_accuracy(net, lambda v: net(v).argmax(-1), xs[0], ys[0], 0.1, steps=15, seed=4, batch_size=16)
    with pytest.raises(NoInputGradient) as alone:
        frozen = lambda v: v @ W[1].T + b[1]
        apgd_accuracy(frozen, lambda v: frozen(v).argmax(-1), xs[1], ys[1], 0.1, steps=15, seed=5, batch_size=16)
    assert isinstance(got[1], NoInputGradient) and str(got[1]) == str(alone.value)



def test_members_apgd_decides_the_zero_gradient_refusal_on_all_of_a_members_batches():
    """A member frozen on its first batch but not on the others is attacked, as alone (the
    refusal is per evaluated set); one frozen on every batch gets the error it raises alone."""
    from chainzrule.apgd import apgd_accuracy
    from chainzrule.attacks import NoInputGradient
    from chainzrule.batched.attack import members_apgd_accuracy

    torch.manual_seed(0)
    x = torch.rand(3, 24, 4, dtype=torch.float64)
    x[0, :8, 0] *= 0.25  # member 0: its first batch of 8 in the dead region (x0 < 0.4), the rest far from it
    x[0, 8:, 0] = 0.6 + 0.4 * x[0, 8:, 0]
    x[2, :, 0] *= 0.25  # member 2: every batch dead
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)

    def net(v):  # [..., 4] -> [..., 2]
        return torch.stack([torch.relu(v[..., 0] - 0.4) * (v @ w), 0.3 * torch.ones_like(v[..., 0])], -1)

    ys = [torch.randint(0, 2, (24,)) for _ in range(3)]
    got = members_apgd_accuracy(net, list(x), ys, 0.1, steps=10, seeds=[3, 4, 5], batch_size=8)
    alone = lambda m: apgd_accuracy(net, lambda v: net(v).argmax(-1), x[m], ys[m], 0.1, steps=10, seed=3 + m,
                                    batch_size=8)
    assert got[0] == alone(0) and got[1] == alone(1)
    with pytest.raises(NoInputGradient) as err:
        alone(2)
    assert isinstance(got[2], NoInputGradient) and str(got[2]) == str(err.value)


@pytest.mark.parametrize("how", ["unused", "zero"])
def test_members_apgd_when_no_member_depends_on_its_input(how):
    """Scores that ignore every input (not in the graph, or a zero gradient): a member that
    misclassifies all its examples gets accuracy 0 (alone, APGD returns before taking a gradient),
    the other gets the error it raises alone."""
    from chainzrule.apgd import apgd_accuracy
    from chainzrule.attacks import NoInputGradient
    from chainzrule.batched.attack import members_apgd_accuracy

    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)  # both always say class 0
    tie = (lambda v: 0.0) if how == "unused" else (lambda v: 0 * v.sum())
    xs = [torch.rand(12, 3, dtype=torch.float64), torch.rand(9, 3, dtype=torch.float64)]
    ys = [torch.ones(12, dtype=torch.long), torch.zeros(9, dtype=torch.long)]  # member 0: all wrong; 1: all right
    stacked = lambda X: b[:, None, :].expand(X.shape[0], X.shape[1], 2) + tie(X)  # [M, N, 2]
    got = members_apgd_accuracy(stacked, xs, ys, 0.1, steps=5, input_range=(0.0, 1.0), seeds=[0, 1])
    const = lambda v: b[0].expand(len(v), 2) + tie(v)  # [N, 2]
    assert got[0] == apgd_accuracy(const, lambda v: const(v).argmax(-1), xs[0], ys[0], 0.1, steps=5) == 0.0
    with pytest.raises(NoInputGradient) as alone:
        apgd_accuracy(const, lambda v: const(v).argmax(-1), xs[1], ys[1], 0.1, steps=5, seed=1)
    assert isinstance(got[1], NoInputGradient) and str(got[1]) == str(alone.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_members_apgd_table_attacks_every_member_and_eps_at_once_as_alone(dtype, monkeypatch):
    """Each member's own ε list (ε = 0 included, lists of different lengths) in one APGD run per loss:
    every (member, ε) accuracy equals ``apgd_accuracy`` of that member alone at that ε."""
    import chainzrule.batched.attack as batt
    from chainzrule.apgd import apgd_accuracy

    torch.manual_seed(1)
    W1, b1 = torch.randn(3, 8, 4, dtype=dtype), torch.randn(3, 8, dtype=dtype)
    W2, b2 = torch.randn(3, 3, 8, dtype=dtype), torch.randn(3, 3, dtype=dtype)
    stacked = lambda X: torch.baddbmm(b2[:, None], torch.tanh(torch.baddbmm(b1[:, None], X, W1.transpose(1, 2))),
                                      W2.transpose(1, 2))  # [M, N, 3]
    xs = [torch.rand(n, 4, dtype=dtype) for n in (40, 33, 21)]
    ys = [torch.randint(0, 3, (len(x),)) for x in xs]
    eps_lists = [[0.05, 0.2], [0.0, 0.1, 0.2], [0.2]]
    calls = []
    real = batt.apgd
    monkeypatch.setattr(batt, "apgd", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = batt.members_apgd_table(stacked, xs, ys, eps_lists, steps=12, seeds=[3, 4, 5], batch_size=16)
    assert len(calls) == 3 * 2  # one run per loss and batch (3 batches of 16 rows), not per member or ε
    for m, (x, y, es) in enumerate(zip(xs, ys, eps_lists)):
        net = lambda v, m=m: torch.tanh(v @ W1[m].T + b1[m]) @ W2[m].T + b2[m]
        for e in es:
            alone = apgd_accuracy(net, lambda v: net(v).argmax(-1), x, y, e, steps=12, seed=3 + m, batch_size=16)
            assert got[m][e] == alone, (m, e)
