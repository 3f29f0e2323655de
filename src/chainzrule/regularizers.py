"""The regularizers DREG is compared against, behind one interface shared with DREG.

Every contender of a Fair Fight is a :class:`Regularizer`, so one training loop treats them alike::

    model = reg.prepare(model)                      # once, before the optimizer is built
    for x, y in batches:
        if reg.needs_input_grad:
            x = x.requires_grad_()
        logits = model(x)
        loss_fn = lambda out: F.cross_entropy(out, y)       # logits -> batch-mean task loss
        loss = loss_fn(logits) + lam * reg.penalty(model, x, logits, loss_fn)

The strength ``lam`` is always applied by the caller; ``penalty`` returns the un-scaled 0-d term.

- ``none`` — :class:`NoReg`: 0.
- ``dreg`` — :class:`DREG`: ``Σ_l mean_x ||S^(l)(x)||_F²`` over hidden layers (analytic).
- ``wd`` — :class:`WeightDecay`: ``Σ ||W||_F²`` over weight matrices (no biases, no polynomial
  coefficients).
- ``igp`` — :class:`InputGradientPenalty`: ``mean_x ||∇_x L(f(x), y)||²`` (double backprop).
- ``jr`` — :class:`JacobianProjections`: ``mean_x ||J_f(x)||_F²``, unbiased random projections.
- ``sn`` — :class:`SpectralNorm`: 0; the constraint lives in the weights.

Choices that the papers leave open, and which are ours:

- **Weight decay** is an explicit penalty ``λ Σ ||W||²`` added to the loss, not the optimizer's
  ``weight_decay``, so that every contender uses the same strength-λ interface and the *same*
  optimizer. With plain SGD or Adam this is coupled L2 (gradient ``2λW``, i.e. the optimizer's
  ``weight_decay = 2λ``), not AdamW's decoupled decay. ``WeightDecay(via_optimizer=True)`` is
  there for a loop that prefers the optimizer route: its penalty is 0, ``weight_decay`` is True
  and :meth:`WeightDecay.decay_parameters` lists what the optimizer must decay.
- **Input-gradient penalty** (Drucker & LeCun 1992) differentiates the *per-example* loss with
  respect to its own input; with a batch-mean ``loss_fn`` this is the gradient of
  ``loss_fn(logits) * batch_size`` (exact as long as examples do not interact in the forward,
  true for every model here: no batch norm, and the task loss is a mean of per-example losses).
  One exception: the CORN head's loss divides by the batch's count of (example, task) pairs, not
  by the batch size, so each example's gradient is its own summed binary cross-entropy times
  ``N / Σ pairs`` (a label-dependent factor in [1/(K−1), 1]), not the gradient of
  ``corn_loss`` on that example alone (which divides by its own task count).
- **Jacobian regularization** (Hoffman, Roberts & Yaida 2019) penalizes the per-example
  ``||J_f(x)||_F²`` of the logits, estimated with ``n_proj`` random unit vectors ``v`` in output
  space per example: ``||J||_F² ≈ C · mean_v ||vᵀ J||²`` (``C`` output dims). Unbiased, since
  ``E[v vᵀ] = I / C`` for ``v`` uniform on the sphere. No ½ factor (their λ_JR/2 is our λ).
- **Spectral normalization** (Miyato et al. 2018) re-parametrizes every hidden layer's linear map
  and the head with ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per
  training forward). It has no strength: ``penalty`` is 0 and λ is ignored.

>>> import torch, torch.nn.functional as F
>>> from chainzrule.models import MLP
>>> _ = torch.manual_seed(0)
>>> net, reg = MLP(4, [8], 3), make_regularizer("igp")
>>> net = reg.prepare(net)
>>> x, y = torch.randn(5, 4).requires_grad_(reg.needs_input_grad), torch.randint(0, 3, (5,))
>>> logits = net(x)
>>> loss_fn = lambda out: F.cross_entropy(out, y)
>>> loss = loss_fn(logits) + 0.1 * reg.penalty(net, x, logits, loss_fn)
>>> loss.backward()
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .dreg import collect
from .errors import ConfigError, check_int, is_number
from .layers import hidden_layers

LossFn = Callable[[Tensor], Tensor]


def _zero(logits: Tensor) -> Tensor:
    return logits.new_zeros(())


def _check_input_grad(name: str, x: Tensor) -> None:
    if not (isinstance(x, Tensor) and x.requires_grad):
        raise ConfigError(
            f"{name} needs the input to require grad: expected x.requires_grad=True, got False "
            "(call x.requires_grad_() before the forward when reg.needs_input_grad is True)"
        )


class Regularizer:
    """Base class: a penalty that a training loop adds as ``loss = task + λ · penalty``.

    Attributes:
        name: short name used by :func:`make_regularizer` and in result tables.
        needs_input_grad: True if :meth:`penalty` differentiates with respect to the input, so
            the loop must call ``x.requires_grad_()`` before the forward.
        weight_decay: True only when decay is left to the optimizer (see :class:`WeightDecay`).
    """

    name: str = "base"
    needs_input_grad: bool = False
    weight_decay: bool = False
    #: draws random numbers per batch row: under torchrun its ``penalty`` takes ``part`` (the rows
    #: of the global batch and this process's positions in it), so every process draws alike
    draws_per_row: bool = False

    def prepare(self, model: nn.Module) -> nn.Module:
        """Called once before training (and before building the optimizer); returns ``model``.

        Modifies the model in place where needed (never copies it).
        """
        return model

    def penalty(self, model: nn.Module, x: Tensor, logits: Tensor, loss_fn: LossFn) -> Tensor:
        """The un-scaled penalty (0-d tensor) for the batch ``x`` whose forward gave ``logits``.

        ``loss_fn(logits)`` must return the batch-mean task loss (labels captured inside).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoReg(Regularizer):
    """No regularization: penalty 0.

    >>> NoReg().penalty(None, None, torch.ones(2, 3), None)
    tensor(0.)
    """

    name = "none"

    def penalty(self, model, x, logits, loss_fn):
        return _zero(logits)


class DREG(Regularizer):
    """DREG: ``Σ_l mean_x ||S^(l)(x)||_F²`` over hidden layers, analytic in the forward pass.

    Behind this interface ``penalty`` runs its own forward of ``x`` under
    :func:`chainzrule.dreg.collect` (the terms belong to that call, nothing is read from the
    model). A training loop that wants DREG at no extra forward asks the training forward itself:
    ``logits, jsq = model(x, return_jacobian=True)`` (what ``chainzrule train`` does).

    >>> from chainzrule.models import MLP
    >>> reg, net, x = DREG(), MLP(4, [8], 3, activation="gelu"), torch.randn(5, 4)
    >>> bool(reg.penalty(net, x, net(x), None) > 0)
    True
    """

    name = "dreg"

    def penalty(self, model, x, logits, loss_fn):
        with collect(model) as terms:
            model(x)
        return terms.penalty()


def _is_weight(name: str, tensor: Tensor) -> bool:
    return "weight" in name and tensor.dim() >= 2


def _weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, name)`` of every weight matrix: a parameter whose name contains "weight" and
    that has at least 2 dimensions, parametrized or not (nn.Linear / conv weights, the ordinal
    heads' score weights, KAN's base and spline weights). Never biases, polynomial
    ``coefficients``, cutpoints or 1-d normalization scales."""
    out = []
    for m in model.modules():
        for name, p in m._parameters.items():
            if p is not None and _is_weight(name, p):
                out.append((m, name))
        if parametrize.is_parametrized(m):
            for name, plist in m.parametrizations.items():
                if _is_weight(name, plist.original):
                    out.append((m, name))
    return out


class WeightDecay(Regularizer):
    """Explicit L2 penalty ``Σ ||W||_F²`` over weight matrices (module docstring for the choice).

    Weight matrices are the parameters whose name contains "weight" and that have at least two
    dimensions: the hidden layers' linear maps and the head (``nn.Linear`` or an ordinal head's
    score weight), KAN's base and spline weights. Biases, polynomial coefficients, ordinal
    cutpoints and 1-d scales are excluded. The penalty reads the module attribute, i.e. the
    effective weight under a parametrization.

    Args:
        via_optimizer: leave decay to the optimizer instead: ``penalty`` is 0,
            ``weight_decay`` is True and :meth:`decay_parameters` gives the tensors to decay.

    >>> lin = nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
    >>> WeightDecay().penalty(lin, None, torch.zeros(1, 1), None)
    tensor(25., grad_fn=<AddBackward0>)
    """

    name = "wd"

    def __init__(self, via_optimizer: bool = False) -> None:
        self.via_optimizer = bool(via_optimizer)
        self.weight_decay = self.via_optimizer

    def decay_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters holding the weight matrices (for an optimizer parameter group).

        Under a parametrization (e.g. spectral norm) this is the unconstrained ``original``.
        """
        params = []
        for m, name in _weights(model):
            if parametrize.is_parametrized(m, name):
                params.append(m.parametrizations[name].original)
            else:
                params.append(m._parameters[name])
        return params

    def penalty(self, model, x, logits, loss_fn):
        if self.via_optimizer:
            return _zero(logits)
        total = _zero(logits)
        for m, name in _weights(model):
            w = getattr(m, name)  # [out, in, ...]
            total = total + (w * w).sum()
        return total

    def __repr__(self) -> str:
        return f"WeightDecay(via_optimizer={self.via_optimizer})"


class InputGradientPenalty(Regularizer):
    """Double backprop (Drucker & LeCun 1992): ``mean_x ||∇_x L(f(x), y)||²``.

    The gradient of each example's own loss with respect to its own input is the gradient of
    ``loss_fn(logits) * batch_size`` (the sum of per-example losses; CORN: see the module doc) with respect to ``x``,
    taken with ``create_graph=True`` so the penalty backpropagates to the weights. ``x`` must
    require grad before the forward (``needs_input_grad``).

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    >>> x, y = torch.randn(6, 3, requires_grad=True), torch.randint(0, 2, (6,))
    >>> loss_fn = lambda out: nn.functional.cross_entropy(out, y)
    >>> p = InputGradientPenalty().penalty(net, x, net(x), loss_fn)
    >>> p.shape, bool(p > 0)
    (torch.Size([]), True)
    """

    name = "igp"
    needs_input_grad = True

    def penalty(self, model, x, logits, loss_fn):
        _check_input_grad("the input-gradient penalty", x)
        n = x.shape[0]
        loss_sum = loss_fn(logits) * n  # Σ_i L_i
        (g,) = torch.autograd.grad(loss_sum, x, create_graph=True)  # [N, ...]: ∇_{x_i} L_i
        return g.reshape(n, -1).pow(2).sum(dim=1).mean()


class JacobianProjections(Regularizer):
    """Jacobian regularization (Hoffman, Roberts & Yaida 2019) by random projections.

    For each example, ``n_proj`` independent vectors ``v`` uniform on the unit sphere of the
    ``C``-dimensional output space; ``vᵀ J`` comes from one backward
    (``autograd.grad(logits, x, grad_outputs=v, create_graph=True)``), and

        penalty = mean_x  C / n_proj · Σ_v ||vᵀ J_f(x)||²,

    an unbiased estimate of ``mean_x ||J_f(x)||_F²``. Hoffman et al. found ``n_proj = 1``
    enough for training (the default).

    Args:
        n_proj: projections per example and step, ≥ 1.
        seed: seed of a private CPU generator for the draws (moved to the logits' device);
            ``None`` draws from the global RNG of the logits' device.

    >>> net = nn.Linear(3, 2, bias=False)
    >>> x = torch.randn(4, 3, requires_grad=True)
    >>> est = JacobianProjections(n_proj=4000, seed=0).penalty(net, x, net(x), None)
    >>> exact = net.weight.pow(2).sum()
    >>> bool(abs(est - exact) < 0.05 * exact)
    True
    """

    name = "jr"
    needs_input_grad = True
    draws_per_row = True

    def __init__(self, n_proj: int = 1, seed: int | None = None) -> None:
        check_int("n_proj", n_proj)
        self.n_proj = n_proj
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def directions(self, n: int, c: int, like: Tensor) -> Tensor:
        """``[n, c]`` projection directions, rows uniform on the unit sphere, on ``like``'s device
        and dtype; drawn from this regularizer's own seeded generator when it has a seed (so a
        batched run draws the same directions as its single run)."""
        if self._generator is None:
            v = torch.randn(n, c, device=like.device, dtype=like.dtype)
        else:
            v = torch.randn(n, c, generator=self._generator, dtype=torch.float64)
            v = v.to(device=like.device, dtype=like.dtype)
        return v / v.norm(dim=1, keepdim=True)  # [n, c]

    def penalty(self, model, x, logits, loss_fn, part: tuple[int, Tensor] | None = None):
        """The estimate for ``x``. ``part = (rows of the global batch, positions of x's rows in
        it)`` when ``x`` is one process's part of a global batch (torchrun): every process draws
        the global batch's directions and keeps its rows, so the run equals the single-process one
        (the mean is still over ``x``'s rows; the caller weights it by the part's share)."""
        _check_input_grad("Jacobian regularization", x)
        n = logits.shape[0]
        out = logits.reshape(n, -1)  # [N, C]
        c = out.shape[1]
        if part is not None and len(part[1]) != n:
            raise ValueError(f"part names the positions of {len(part[1])} rows, got logits of {n}")
        total = _zero(logits)
        for _ in range(self.n_proj):
            if part is None:
                v = self.directions(n, c, out)  # [N, C]
            else:
                v = self.directions(part[0], c, out)[part[1].to(out.device)]  # [N_global, C] → [N, C]
            (vj,) = torch.autograd.grad(out, x, grad_outputs=v, create_graph=True)  # [N, ...]
            total = total + vj.reshape(n, -1).pow(2).sum()
        return total * (c / (self.n_proj * n))

    def __repr__(self) -> str:
        return f"JacobianProjections(n_proj={self.n_proj}, seed={self.seed})"


def _has_weight_matrix(m: nn.Module) -> bool:
    if parametrize.is_parametrized(m, "weight"):
        return True
    w = m._parameters.get("weight")
    return w is not None and w.dim() >= 2


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class SpectralNorm(Regularizer):
    """Spectral normalization of every hidden layer's linear map and of the head.

    ``prepare`` registers ``torch.nn.utils.parametrizations.spectral_norm`` on the ``weight`` of
    the hidden layers' ``linear``, of the head (an ``nn.Linear``, or an ordinal head's score
    weight ``[1, in]``, normalized to unit norm) and of any other ``nn.Linear`` in the model,
    in place; a weight already parametrized is left alone, so ``prepare`` is idempotent. A
    model with none of these (e.g. a bare KAN) is refused with ``ValueError``. In training mode every forward runs ``n_power_iterations`` of the power method;
    in eval mode the stored estimate is used. The constraint *is* the regularization: there is
    no strength, ``penalty`` is 0 and the caller's λ has no effect (a Fair Fight tunes only the
    learning rate for it). Load a checkpoint only after ``prepare`` (the state dict holds
    ``parametrizations.weight.original`` and the power-method vectors).

    ``gain`` g (default 1) makes every *hidden* layer's map ``g · W / σ(W)``, its Lipschitz
    constant g (the head keeps 1: its temperature is the model's ``logit_scale``). With g = 1 a
    network's pre-activations stay small (a unit sees ``‖x‖ / σ`` spread over its inputs), which
    is harmless for ReLU (positively homogeneous: the logit temperature rescales it, up to the biases) but
    keeps GELU and SiLU in their nearly linear range around 0: on MNIST (784-258-258-10, 4 epochs,
    the tuned lr) SiLU + spectral norm reaches 96.6% test accuracy at g = 1 and 98.3% at g = 4
    with the same Lipschitz bound (temperature 49.6 → 3.1). Tune g with the temperature.

    >>> net = SpectralNorm().prepare(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    >>> parametrize.is_parametrized(net[0], "weight") and parametrize.is_parametrized(net[2], "weight")
    True
    """

    name = "sn"

    def __init__(self, n_power_iterations: int = 1, eps: float = 1e-12, gain: float = 1.0) -> None:
        check_int("n_power_iterations", n_power_iterations)
        if not (is_number(gain) and math.isfinite(gain) and gain > 0):
            raise ConfigError(f"gain must be a finite number > 0, got {gain!r}")
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        self.gain = float(gain)

    def prepare(self, model):
        convs = [name for name, m in model.named_modules() if isinstance(m, _CONVS)]
        if convs:  # torch's spectral_norm of a conv weight is not the conv operator's norm
            raise ConfigError(f"spectral norm here constrains linear maps only: expected a model without "
                              f"convolutions, got {type(model).__name__} with conv layers {', '.join(convs)} "
                              f"(they would stay unconstrained)")
        targets = [layer.linear for _, layer in hidden_layers(model)]
        hidden = {id(m) for m in targets}  # the gain acts on these only
        head = getattr(model, "head", None)
        if isinstance(head, nn.Module):
            targets += [m for m in head.modules() if _has_weight_matrix(m)]
        targets += [m for m in model.modules() if isinstance(m, nn.Linear)]
        targets = list({id(m): m for m in targets}.values())  # unique, in order
        if not targets:
            raise ConfigError(
                f"spectral norm needs linear maps: expected chainzrule hidden layers, a head or "
                f"nn.Linear modules, found none in {type(model).__name__}"
            )
        for m in targets:
            if not parametrize.is_parametrized(m, "weight"):
                spectral_norm(m, n_power_iterations=self.n_power_iterations, eps=self.eps)
                if self.gain != 1.0 and id(m) in hidden:
                    parametrize.register_parametrization(m, "weight", Gain(self.gain))
        return model

    def penalty(self, model, x, logits, loss_fn):
        return _zero(logits)

    def __repr__(self) -> str:
        gain = f", gain={self.gain:g}" if self.gain != 1.0 else ""
        return f"SpectralNorm(n_power_iterations={self.n_power_iterations}{gain})"


class Gain(nn.Module):
    """A fixed gain as a parametrization: ``weight → g · weight`` (:class:`SpectralNorm`'s layer
    Lipschitz constant). It holds no tensor, so a state dict is the same with and without it.

    >>> lin = nn.Linear(2, 2)
    >>> _ = parametrize.register_parametrization(lin, "weight", Gain(3.0))
    >>> torch.allclose(lin.weight, 3.0 * lin.parametrizations.weight.original)
    True
    """

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = float(gain)

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.gain

    def extra_repr(self) -> str:
        return f"gain={self.gain:g}"


REGULARIZERS: dict[str, type[Regularizer]] = {
    "none": NoReg,
    "dreg": DREG,
    "wd": WeightDecay,
    "igp": InputGradientPenalty,
    "jr": JacobianProjections,
    "sn": SpectralNorm,
}


def make_regularizer(name: str, **kwargs) -> Regularizer:
    """Build a regularizer by name: none, dreg, wd, igp, jr, sn; ``kwargs`` go to its class.

    >>> make_regularizer("jr", n_proj=2)
    JacobianProjections(n_proj=2, seed=None)
    >>> make_regularizer("l1")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown regularizer 'l1': expected one of none, dreg, wd, igp, jr, sn
    """
    key = str(name).lower()
    if key not in REGULARIZERS:
        raise ConfigError(f"unknown regularizer {name!r}: expected one of {', '.join(REGULARIZERS)}")
    try:
        return REGULARIZERS[key](**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad options for regularizer {key!r}: {e}") from None
