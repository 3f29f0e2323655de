"""APGD (AutoAttack's step-size-free PGD): ball and box, schedule, strength vs PGD, DLR scale invariance."""

import pytest
import torch
import torch.nn.functional as F

from chainzrule.apgd import apgd, apgd_accuracy, checkpoints, dlr_loss
from chainzrule.errors import ConfigError, DataError
from chainzrule.robustness import NoInputGradient, adversarial_accuracy


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(600, 12, generator=g)
    y = (x @ torch.randn(12, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def _pred(model):
    return lambda b: model(b).argmax(1)


def test_checkpoints_are_the_papers():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (Croce & Hein 2020, section 3.2)
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [0]


def test_adversarial_points_stay_in_ball_and_box(trained):
    model, x, y = trained
    for loss in ("ce", "dlr"):
        xa, fooled = apgd(model, _pred(model), x, y, eps=0.1, loss=loss, steps=20)
        assert (xa - x).abs().max() <= 0.1 + 1e-6
        assert xa.min() >= 0 and xa.max() <= 1
        # every example reported fooled really is misclassified at its returned point
        assert bool((model(xa).argmax(1)[fooled] != y[fooled]).all())


def test_apgd_is_at_least_as_strong_as_pgd(trained):
    model, x, y = trained
    loss = lambda b, t: F.cross_entropy(model(b), t)
    for eps in (0.03, 0.1):
        pgd = adversarial_accuracy(loss, _pred(model), x, y, eps, method="pgd", steps=10)
        assert apgd_accuracy(model, _pred(model), x, y, eps, steps=50) <= pgd
    clean = (model(x).argmax(1) == y).float().mean().item()
    assert apgd_accuracy(model, _pred(model), x, y, 0.0) == pytest.approx(clean)


def test_dlr_is_invariant_to_logit_scale(trained):
    model, x, y = trained
    big = lambda b: 1000.0 * model(b)
    a = apgd_accuracy(model, _pred(model), x, y, 0.05, steps=30, losses=("dlr",))
    b = apgd_accuracy(big, _pred(model), x, y, 0.05, steps=30, losses=("dlr",))
    assert a == b
    s = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    assert torch.allclose(dlr_loss(s, torch.tensor([0])), dlr_loss(7 * s, torch.tensor([0])))
    assert dlr_loss(s, torch.tensor([0])).item() == pytest.approx(-(3 - 1) / (3 - 0))


def test_worst_case_over_losses(trained):
    model, x, y = trained
    both = apgd_accuracy(model, _pred(model), x, y, 0.05, steps=30)
    for loss in ("ce", "dlr"):
        assert both <= apgd_accuracy(model, _pred(model), x, y, 0.05, steps=30, losses=(loss,))


def test_bad_input_is_refused(trained):
    model, x, y = trained
    with pytest.raises(ConfigError, match="loss"):
        apgd_accuracy(model, _pred(model), x, y, 0.1, losses=("hinge",))
    with pytest.raises(ConfigError, match="steps"):
        apgd(model, _pred(model), x, y, 0.1, steps=0)
    with pytest.raises(ConfigError, match="eps"):
        apgd(model, _pred(model), x, y, -0.1)
    with pytest.raises(DataError, match="labels"):
        apgd(model, _pred(model), x, y[:3], 0.1)
    const = lambda b: torch.zeros(b.shape[0], 4) + model[2].bias  # scores without an input path
    with pytest.raises(NoInputGradient):
        apgd(const, lambda b: torch.zeros(b.shape[0], dtype=torch.long), x, y, 0.1, steps=2)


def test_decide_reads_the_attacks_own_forward(trained):
    """Correctness read from the loss step's scores (no second forward) gives the same attack."""
    model, x, y = trained
    for loss in ("ce", "dlr"):
        xa, fa = apgd(model, _pred(model), x, y, eps=0.08, loss=loss, steps=30, seed=3)
        xb, fb = apgd(model, _pred(model), x, y, eps=0.08, loss=loss, steps=30, seed=3, decide=lambda s: s.argmax(1))
        assert torch.equal(fa, fb) and torch.equal(xa, xb)


def test_later_losses_attack_only_the_survivors_with_their_own_start(trained):
    """apgd_accuracy = each loss run on the whole batch from the batch's random start, OR-ed per
    example (AutoAttack's worst case), though it attacks only what the earlier losses left."""
    model, x, y = trained
    for eps in (0.02, 0.08, 0.5):
        fooled = torch.zeros(len(y), dtype=torch.bool)
        for b, i in enumerate(range(0, len(y), 256)):
            for loss in ("ce", "dlr"):
                _, f = apgd(model, _pred(model), x[i:i + 256], y[i:i + 256], eps, loss=loss, steps=25, seed=7 + b)
                fooled[i:i + 256] |= f
        want = int((~fooled).sum()) / len(y)
        got = apgd_accuracy(model, _pred(model), x, y, eps, steps=25, batch_size=256, seed=7)
        assert got == pytest.approx(want, abs=1e-12)
        assert apgd_accuracy(model, _pred(model), x, y, eps, steps=25, batch_size=256, seed=7,
                             decide=lambda s: s.argmax(1)) == got


def test_start_must_match_the_batch(trained):
    model, x, y = trained
    with pytest.raises(DataError, match="start"):
        apgd(model, _pred(model), x, y, 0.1, steps=2, start=torch.zeros(3, 12))



def _algorithm1(net, x, y, eps, steps, start, loss):
    """Croce & Hein (2020), Algorithm 1, transcribed literally with the paper's indices (L-inf,
    no box): returns (fooled [N], x_adv [N, D]: first misclassified iterate, else x_max)."""
    from chainzrule.apgd import _loss_fn

    f_of = _loss_fn(loss)
    P = lambda v: torch.minimum(torch.maximum(v, x - eps), x + eps)  # noqa: E731

    def f_and_grad(v):
        v = v.detach().requires_grad_(True)
        f = f_of(net(v), y)
        (g,) = torch.autograd.grad(f.sum(), v)
        return f.detach(), g

    W = checkpoints(steps)
    X = [P(x + eps * start)]  # X[k] = x^(k)
    F_, G = [], []
    f0, g0 = f_and_grad(X[0])
    F_.append(f0), G.append(g0)
    eta = torch.full((len(y),), 2.0 * eps, dtype=x.dtype)
    x_max, f_max = X[0].clone(), f0.clone()
    found = x.clone()
    fooled = net(x).argmax(-1) != y
    for v in (X[0],):
        new = (net(v).argmax(-1) != y) & ~fooled
        found[new], fooled = v[new], fooled | new
    eta_at, fmax_at, prev_w = {0: eta.clone()}, {0: f_max.clone()}, 0
    for k in range(steps):
        z = P(X[k] + eta[:, None] * G[k].sign())
        a = 1.0 if k == 0 else 0.75
        X.append(P(X[k] + a * (z - X[k]) + (1 - a) * (X[k] - X[k - 1 if k else 0])))
        f, g = f_and_grad(X[k + 1])
        F_.append(f), G.append(g)
        new = (net(X[k + 1]).argmax(-1) != y) & ~fooled
        found[new], fooled = X[k + 1][new], fooled | new
        up = f > f_max
        x_max[up], f_max[up] = X[k + 1][up], f[up]
        if k + 1 in W and k + 1 > prev_w:
            ups = sum((F_[i + 1] > F_[i]).double() for i in range(prev_w, k + 1))
            cond1 = ups < 0.75 * (k + 1 - prev_w)
            cond2 = (eta == eta_at[prev_w]) & (f_max == fmax_at[prev_w])
            halve = cond1 | cond2
            eta = torch.where(halve, eta / 2, eta)
            X[k + 1] = torch.where(halve[:, None], x_max, X[k + 1])  # x^(k+1) <- x_max
            fb, gb = f_and_grad(X[k + 1])
            F_[k + 1], G[k + 1] = torch.where(halve, fb, F_[k + 1]), torch.where(halve[:, None], gb, G[k + 1])
            eta_at[k + 1], fmax_at[k + 1], prev_w = eta.clone(), f_max.clone(), k + 1
    return fooled, torch.where(fooled[:, None], found, x_max)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_is_algorithm_1(loss):
    """apgd = a literal transcription of the paper's Algorithm 1 (momentum carried through the
    step-size restarts, every iterate checked), on small random networks in float64."""
    for trial in range(4):
        g = torch.Generator().manual_seed(10 + trial)
        W1 = torch.randn(6, 16, generator=g, dtype=torch.float64) * 2
        W2 = torch.randn(16, 5, generator=g, dtype=torch.float64)
        net = lambda v: torch.tanh(v @ W1) @ W2  # noqa: E731 [N, 5]
        x = torch.rand(50, 6, generator=g, dtype=torch.float64)
        y = net(x).argmax(-1)
        start = torch.rand(50, 6, generator=g, dtype=torch.float64) * 2 - 1
        want_fooled, want_x = _algorithm1(net, x, y, 0.08, 40, start, loss)
        got_x, got_fooled = apgd(net, lambda v: net(v).argmax(-1), x, y, 0.08, loss=loss, steps=40, start=start,
                                 input_range=None)
        assert torch.equal(got_fooled, want_fooled) and 0 < int(want_fooled.sum()) < 50
        assert torch.allclose(got_x, want_x, atol=1e-12, rtol=0)


def test_a_checkpoint_iterate_that_misclassifies_is_found():
    """The iterate of a checkpoint step is checked before the step-size restart replaces it
    (AutoAttack checks every iterate): here the first step lands in a misclassified region of
    lower loss, the checkpoint halves the step and restarts from the best (correct) point, and
    the later, shorter steps never return there."""
    def scores(v):  # [N, 1] -> [N, 3]; class 0 is right; v >= 0.5: misclassified, at a lower CE
        u = v[:, 0]
        near = -0.1 - (u - 0.4) ** 2  # CE rises towards 0.4, falls after
        far = u >= 0.5
        b = torch.where(far, torch.full_like(u, 0.01), near)
        c = torch.where(far, torch.full_like(u, -10.0), near)
        return torch.stack([torch.zeros_like(u), b, c], 1)

    x, y = torch.tensor([[0.45]], dtype=torch.float64), torch.tensor([0])
    xa, fooled = apgd(scores, lambda v: scores(v).argmax(-1), x, y, 0.1, steps=4, start=-torch.ones_like(x))
    assert bool(fooled[0]) and float(xa[0, 0]) == pytest.approx(0.55)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_every_point_the_attack_evaluates_that_misclassifies_counts(loss):
    """Property: an example is fooled if any point at which APGD evaluated its scores misclassifies it;
    and no point is evaluated twice (the step-size restarts reuse the best point's stored gradient)."""
    for trial in range(6):
        g = torch.Generator().manual_seed(trial)
        W1 = torch.randn(5, 8, generator=g, dtype=torch.float64) * 3
        W2 = torch.randn(8, 4, generator=g, dtype=torch.float64)
        net = lambda v: torch.sin(v @ W1) @ W2  # [N, 4]
        seen = []
        scores = lambda v: seen.append(net(v).detach().argmax(-1)) or net(v)
        x = torch.rand(40, 5, generator=g, dtype=torch.float64)
        y = net(x).argmax(-1)
        _, fooled = apgd(scores, lambda v: net(v).argmax(-1), x, y, 0.15, loss=loss, steps=30, seed=trial,
                         input_range=None)
        ever = torch.stack(seen).ne(y).any(0)  # [N]
        assert torch.equal(ever & ~fooled, torch.zeros_like(fooled)) and bool(fooled.any())
        assert len(seen) <= 30 + 1  # one gradient per step and the start: a restart reuses its best point's


def _half_dead():
    """A net whose input gradient is exactly zero for x[:, 0] < 0.4 (a dead ReLU there) and 32
    inputs: the first 8 in that region (frozen even 0.1 away), the other 24 far from it."""
    torch.manual_seed(0)
    x = torch.rand(32, 4, dtype=torch.float64)
    x[:8, 0] *= 0.25
    x[8:, 0] = 0.6 + 0.4 * x[8:, 0]
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    scores = lambda v: torch.stack([torch.relu(v[:, 0] - 0.4) * (v @ w), 0.3 * torch.ones_like(v[:, 0])], 1)  # [N, 2]
    y = torch.randint(0, 2, (32,))
    return scores, (lambda v: scores(v).argmax(-1)), x, y


def test_a_frozen_batch_among_moving_ones_is_attacked_not_refused():
    """The zero-gradient refusal is decided on the whole set: with batches of 8 the first batch is
    frozen (it raises alone), but the set is attacked, the frozen batch's examples keep their clean
    decisions, and the other batches get exactly what they get without it."""
    scores, pred, x, y = _half_dead()
    with pytest.raises(NoInputGradient, match="exactly zero wherever it was taken, for the 8 examples evaluated"):
        apgd_accuracy(scores, pred, x[:8], y[:8], 0.1, steps=10, seed=3, batch_size=8)
    got = apgd_accuracy(scores, pred, x, y, 0.1, steps=10, seed=3, batch_size=8)
    rest = apgd_accuracy(scores, pred, x[8:], y[8:], 0.1, steps=10, seed=4, batch_size=8)  # batch b+1's seed
    clean = int((pred(x[:8]) == y[:8]).sum())
    assert got == pytest.approx((clean + 24 * rest) / 32, abs=1e-12)
    loss = lambda v, t: torch.nn.functional.cross_entropy(scores(v), t)
    for method in ("fgsm", "pgd"):
        with pytest.raises(NoInputGradient, match="exactly zero wherever it was taken, for the 8 examples evaluated"):
            adversarial_accuracy(loss, pred, x[:8], y[:8], 0.1, method=method, steps=3, batch_size=8)
        got = adversarial_accuracy(loss, pred, x, y, 0.1, method=method, steps=3, batch_size=8, seed=3)
        rest = adversarial_accuracy(loss, pred, x[8:], y[8:], 0.1, method=method, steps=3, batch_size=8, seed=4)
        assert got == pytest.approx((clean + 24 * rest) / 32, abs=1e-12)
    assert adversarial_accuracy(loss, pred, x, y, 0.1, batch_size=8) == adversarial_accuracy(loss, pred, x, y, 0.1)


def test_start_gradient_sees_the_start_and_who_was_wrong(trained):
    """``start_gradient`` is called once, with the start point's input gradient and the examples
    misclassified before the attack; not at all when every example is."""
    model, x, y = trained
    calls = []
    apgd(model, _pred(model), x, y, 0.05, steps=3, seed=1, require_gradient=False,
         start_gradient=lambda g, w: calls.append((g.shape, w.clone())))
    assert len(calls) == 1 and calls[0][0] == x.shape
    assert torch.equal(calls[0][1], _pred(model)(x) != y)
    wrong = (_pred(model)(x) + 1) % 4
    apgd(model, _pred(model), x, wrong, 0.05, steps=3, start_gradient=lambda g, w: pytest.fail("called"))


def test_per_example_eps_is_each_examples_own_attack(trained):
    """A tensor ``eps [N]`` attacks each example with its own radius, as a float eps does; zero,
    negative or misshapen radii are refused."""
    model, x, y = trained
    x, y = x[:40], y[:40]
    pred = lambda b: model(b).argmax(-1)
    radius = torch.where(torch.arange(40) % 2 == 0, 0.05, 0.2).to(x.dtype)
    start = torch.rand_like(x) * 2 - 1
    xa, fooled = apgd(model, pred, x, y, radius, steps=10, start=start)
    for e in (0.05, 0.2):
        rows = radius == e
        xe, fe = apgd(model, pred, x[rows], y[rows], e, steps=10, start=start[rows])
        assert torch.equal(fe, fooled[rows]) and torch.equal(xe, xa[rows])
    for bad in (torch.zeros(40), -radius, radius[:3]):
        with pytest.raises(ConfigError, match="eps > 0"):
            apgd(model, pred, x, y, bad, steps=2)
