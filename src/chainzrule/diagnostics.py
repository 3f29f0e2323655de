"""Sensitivity diagnostics: input-Jacobian norms, gradient tail ratios, PGV, Lipschitz bound.

The papers do not define their metrics; these definitions are ours (guide §3).

**Input sensitivity** ``||J_f(x)||_F`` — Frobenius norm of the Jacobian of the whole network's
output (logits) with respect to its input, per example (:func:`jacobian_norms`):

- ``method="exact"``: ``torch.func.vmap(torch.func.jacrev(f))`` over chunks of ``batch_size``;
- ``method="projection"``: for wide outputs, ``||J||_F² ≈ C / n_proj · Σ_v ||vᵀ J||²`` with
  ``n_proj`` vectors ``v`` uniform on the unit sphere of the ``C``-dimensional output space
  (Hoffman, Roberts & Yaida 2019). This is unbiased for ``||J||_F²``; the returned norm is its
  square root (so slightly biased low for the norm itself);
- ``method="auto"``: exact when the output has at most 32 entries, else projection.

The network is measured as deployed: in eval mode (restored afterwards, module by module), and
outside any DREG collector the caller may have open, so a diagnostic may sit in the middle of a
training step. Gradients are taken with respect to
the input only: the parameters' ``.grad`` fields are never touched.

**Gradient tail ratio** τ = p99 / mean, always named by its variant:
:func:`tau_input` over per-example ``||J_f(x)||_F`` on test examples, :func:`tau_train` over the
global parameter-gradient norms (:func:`global_grad_norm`) of the last epoch's training steps.
p99 is ``numpy.percentile(values, 99)`` with linear interpolation between order statistics
(numpy's default, "linear" = type 7 of Hyndman & Fan).

**Peak gradient volatility** ``PGV = max_t |G_t − G_{t−1}| / mean_t G_t`` over the global
parameter-gradient norms ``G_t`` of the whole run (:func:`peak_gradient_volatility`).

**Lipschitz upper bound** (ℓ2, input → logits) ``τ · Π_l max|σ_l'| · ||W_l||_2 · ||W_head||_2``
(:func:`lipschitz_bound`), with ``||·||_2`` the spectral norm of the *effective* weight (the
normalized one under spectral normalization, times its layer gain) and ``max|σ'|`` the
activation's certified ``max_slope()`` (exact over the working interval for polynomials; ``inf``
for a raw polynomial), ``τ`` the logit temperature (:mod:`chainzrule.temperature`; 1 if none).
Since ``J_f(x) = τ W_head D_L W_L ⋯ D_1 W_1`` with ``D_l = diag(σ_l'(z_l))``, it bounds
``||J_f(x)||_2`` at every ``x`` (so ``||J_f(x)||_F`` only up to √(outputs)). Every quantity here is
of the logits (temperature included; no softmax, no ordinal link) with respect to the input as the
model reads it: standardized features where the data split standardizes (tables, SST-5), not
the raw ones.

>>> import torch
>>> from chainzrule.models import ChainzRuleMLP
>>> _ = torch.manual_seed(0)
>>> net, x = ChainzRuleMLP(6, [16, 16], 3), torch.randn(64, 6)
>>> s = sensitivity_summary(net, x)
>>> sorted(s)
['jacobian_fro.mean', 'jacobian_fro.p99', 'lipschitz_bound', 'tau_input']
>>> s["tau_input"] >= 1.0
True
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError, check_int, is_int
from . import dreg
from .cnn import CNN
from .layers import hidden_layers
from .models import FeedForward
from .conv import conv_hidden_layers
from .ordinal import CoralHead, CumulativeLinkHead
from .temperature import temperature_of

METHODS = ("exact", "projection", "auto")
AUTO_EXACT_MAX_OUTPUTS = 32


@contextmanager
def _measuring(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block, then every module's training flag restored; DREG collectors the
    caller opened do not see the block's forwards."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with dreg.suspended():
            yield model
    finally:
        for m, was in modes:
            m.training = was


def _check_features(model: nn.Module, x: Tensor) -> None:
    """ConfigError naming the whole input's shape when ``model`` declares an integer ``in_features``
    and ``x`` ``[N, ..., F]`` has another ``F`` (a model with an ``image_shape``, a CNN, also takes
    ``[N, *image_shape]``). Checked here because the model itself would only see one example
    ``[1, ...]`` inside ``vmap`` and name that shape. Shapes only: no forward, no sync."""
    n = getattr(model, "in_features", None)
    if not is_int(n) or (x.dim() >= 2 and x.shape[-1] == n):
        return
    image = getattr(model, "image_shape", None)
    if image is not None and tuple(x.shape[1:]) == tuple(image):
        return
    images = "" if image is None else f" (or images [N, {', '.join(map(str, image))}])"
    raise ConfigError(f"expected {n} input features in the last dimension{images}, got shape {tuple(x.shape)}")


def _check_examples(x: Tensor) -> None:
    """ConfigError unless ``x`` is ``[N, ...]`` with at least one example (a p99 of nothing is undefined)."""
    if x.dim() < 1:
        raise ConfigError(f"expected inputs of shape [N, ...], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ConfigError(f"expected at least one example, got 0 (inputs of shape {tuple(x.shape)})")


def _output_size(model: nn.Module, x: Tensor) -> int:
    """Number of output entries per example (one forward on the first example)."""
    with torch.no_grad():
        return model(x[:1]).reshape(-1).numel()


def _exact_sq(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Exact ``||J_f(x)||_F²`` per example, ``[N]``."""

    def f(xi: Tensor) -> Tensor:  # one example [*in] -> [*out]
        return model(xi.unsqueeze(0)).squeeze(0)

    jac_fn = torch.func.vmap(torch.func.jacrev(f))
    out = []
    with torch.no_grad():  # function transforms ignore the outer no_grad: no graph to parameters
        for chunk in x.split(batch_size):
            jac = jac_fn(chunk)  # [B, *out, *in]
            out.append(jac.reshape(chunk.shape[0], -1).pow(2).sum(dim=1))  # [B]
    return torch.cat(out)


def _projection_sq(model: nn.Module, x: Tensor, n_proj: int, batch_size: int, seed: int) -> Tensor:
    """Unbiased random-projection estimate of ``||J_f(x)||_F²`` per example, ``[N]``."""
    gen = torch.Generator().manual_seed(int(seed))  # CPU draws: the same on every device
    out = []
    # inference_mode(False): under a caller's torch.inference_mode() autograd would be off whatever
    # enable_grad says; the clone makes x (an inference tensor there) one autograd may save
    with torch.inference_mode(False), torch.enable_grad():
        for chunk in x.split(batch_size):
            b = chunk.shape[0]
            xc = chunk.detach().clone().requires_grad_(True)  # [B, *in]
            y = model(xc).reshape(b, -1)  # [B, C]
            c = y.shape[1]
            acc = torch.zeros(b, dtype=torch.float64, device=x.device)  # [B]
            for k in range(n_proj):
                v = torch.randn(b, c, generator=gen, dtype=torch.float64)  # [B, C]
                v = (v / v.norm(dim=1, keepdim=True)).to(device=y.device, dtype=y.dtype)
                (vj,) = torch.autograd.grad(y, xc, grad_outputs=v, retain_graph=k < n_proj - 1)
                acc += vj.reshape(b, -1).double().pow(2).sum(dim=1)  # ||vᵀ J||²   [B]
            out.append((acc * (c / n_proj)).to(x.dtype))
    return torch.cat(out)


def jacobian_norms(
    model: nn.Module,
    x: Tensor,
    method: str = "exact",
    n_proj: int = 8,
    batch_size: int = 256,
    seed: int = 0,
) -> Tensor:
    """Per-example ``||J_f(x)||_F`` of the output with respect to the input, ``[N]``.

    Args:
        model: any module mapping ``[N, *in]`` to ``[N, *out]`` with examples independent.
        x: inputs ``[N, *in]`` (on the model's device).
        method: "exact" (``torch.func``), "projection" (``n_proj`` random unit projections per
            example, unbiased for the squared norm) or "auto" (exact for ≤ 32 outputs).
        batch_size: examples per chunk (memory: exact holds ``batch_size × out × in`` numbers).
        seed: seed of the projection draws (a CPU generator, drawn chunk after chunk, so the
            estimate depends on ``batch_size`` too); unused by "exact".

    Runs in eval mode with Jacobian tracking off, then restores the caller's state (module docstring).
    ``N = 0`` gives an empty ``[0]``. A model with an integer ``in_features`` gets the feature count
    of the whole ``x`` checked first (a ConfigError naming ``x``'s shape, not one example's).

    >>> lin = nn.Linear(3, 2)
    >>> norms = jacobian_norms(lin, torch.randn(5, 3))
    >>> torch.allclose(norms, lin.weight.norm().expand(5))
    True
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    check_int("n_proj", n_proj)
    check_int("batch_size", batch_size)
    if x.dim() < 1:
        raise ConfigError(f"expected inputs of shape [N, ...], got shape {tuple(x.shape)}")
    _check_features(model, x)
    if x.shape[0] == 0:
        return x.new_zeros(0)
    x = x.detach()
    with _measuring(model):
        if method == "auto":
            method = "exact" if _output_size(model, x) <= AUTO_EXACT_MAX_OUTPUTS else "projection"
        if method == "exact":
            sq = _exact_sq(model, x, batch_size)
        else:
            sq = _projection_sq(model, x, n_proj, batch_size, seed)
    return sq.clamp_min(0).sqrt()


def _as_array(values, name: str, minimum: int = 1) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().double().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size < minimum:
        raise ConfigError(f"{name} needs at least {minimum} value(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} needs finite values, got {int((~np.isfinite(arr)).sum())} non-finite")
    return arr


def _tail_ratio(values, name: str) -> float:
    arr = _as_array(values, name)
    mean = arr.mean()
    if mean == 0:
        return math.nan
    return float(np.percentile(arr, 99) / mean)


def tau_input(norms) -> float:
    """Gradient tail ratio, input variant: p99 / mean of per-example ``||J_f(x)||_F``.

    p99 by linear interpolation (``numpy.percentile`` default); ``nan`` if the mean is 0.

    >>> round(tau_input([1.0, 2.0, 3.0, 4.0]), 4)       # p99 = 3.97, mean = 2.5
    1.588
    """
    return _tail_ratio(norms, "tau_input")


def tau_train(grad_norms_last_epoch) -> float:
    """Gradient tail ratio, training variant: p99 / mean of the global parameter-gradient norms
    over the training steps of the last epoch (see :func:`global_grad_norm`).

    >>> tau_train([2.0, 2.0, 2.0])
    1.0
    """
    return _tail_ratio(grad_norms_last_epoch, "tau_train")


def peak_gradient_volatility(grad_norms) -> float:
    """``max_t |G_t − G_{t−1}| / mean_t G_t`` over the run's global gradient norms ``G_t``.

    Needs at least 2 values; ``nan`` if the mean is 0.

    >>> peak_gradient_volatility([1.0, 3.0, 2.0, 6.0])   # max jump 4, mean 3
    1.3333333333333333
    """
    arr = _as_array(grad_norms, "peak_gradient_volatility", minimum=2)
    mean = arr.mean()
    if mean == 0:
        return math.nan
    return float(np.abs(np.diff(arr)).max() / mean)


def global_grad_norm(model: nn.Module) -> float:
    """L2 norm over all parameter gradients that exist (``p.grad is not None``); 0.0 if none.

    >>> lin = nn.Linear(2, 1)
    >>> lin.weight.grad, lin.bias.grad = torch.tensor([[3.0, 0.0]]), torch.tensor([4.0])
    >>> global_grad_norm(lin)
    5.0
    """
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g, dtype=torch.float64).to(device) for g in grads]
    return float(torch.linalg.vector_norm(torch.stack(norms)))  # one host sync


def _spectral_norm(w: Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.detach().double().reshape(w.shape[0], -1), ord=2))


def _max_slope(layer: nn.Module) -> float:
    return float(torch.as_tensor(layer.activation.max_slope()).max())


def _head_bound(model: nn.Module) -> float:
    """``||J_head||_2``: the head is affine, so its Jacobian is constant."""
    head = getattr(model, "head", None)
    if head is not None and callable(getattr(head, "lipschitz_bound", None)):
        return float(head.lipschitz_bound())
    if isinstance(head, nn.Linear):  # nn.Linear and the CORN head
        return _spectral_norm(head.weight)
    if isinstance(head, (CumulativeLinkHead, CoralHead)):
        # logits_k = ±(w·h) + c_k for k < K-1: J = ±1 wᵀ, whose spectral norm is √(K-1)·||w||
        return math.sqrt(head.num_classes - 1) * _spectral_norm(head.weight)
    raise ConfigError(
        "lipschitz_bound needs model.head to be an nn.Linear, an ordinal head or to provide "
        f"lipschitz_bound(), got {type(head).__name__}"
    )


def _refuse_uncounted(model: nn.Module, counted: list) -> None:
    """ConfigError if a module of ``model`` holds parameters outside the ``counted`` modules: the
    bound would leave its Lipschitz constant out and be no bound (e.g. a LayerNorm, an extra
    nn.Linear, a KAN's splines). Parameter-free modules (ReLU, pooling, dropout and flatten in
    eval mode) are taken as 1-Lipschitz."""
    own = {id(p) for m in counted if m is not None for p in m.parameters()}
    foreign = [(name, type(m).__name__) for name, m in model.named_modules()
               if any(id(p) not in own for p in m.parameters(recurse=False))]
    if foreign:
        where = ", ".join(f"{name or 'the model itself'} ({kind})" for name, kind in foreign[:3])
        raise ConfigError(f"lipschitz_bound counts the hidden layers and model.head only; {type(model).__name__} also "
                          f"has parameters in {where}{', ...' if len(foreign) > 3 else ''}, whose Lipschitz constant "
                          f"it cannot bound")


def lipschitz_bound(model: nn.Module, *, assume_chain: bool = False) -> float:
    """``τ · Π_l max|σ_l'| · ||W_l||_2 · ||W_head||_2``, an ℓ2 Lipschitz bound of input → logits.

    ``τ``: the model's logit temperature (:func:`chainzrule.temperature.temperature_of`, 1 if none).

    Over the model's hidden layers (:func:`chainzrule.hidden_layers`) and ``model.head``: an
    ``nn.Linear`` (CORN included) counts ``||W||_2``; a CLM or CORAL ordinal head, whose K−1
    logits share one score ``w·h``, counts ``√(K−1)·||w||``; any other head must provide its own
    ``lipschitz_bound()``. Conv hidden layers (a :class:`~chainzrule.cnn.CNN`) count the
    operator norm of their convolution on the model's image size,
    :meth:`~chainzrule.conv.ConvHiddenLayer.operator_norm_bound`: exact (dense Gram matrix) up to
    4096 inputs ``C_in·H·W``, above that the circular-convolution bound (never below it). Before
    2026-12-03 it was a 500-step power iteration, which converges from below (up to 5e-4 under
    on 28×28 maps). Weights are read in
    eval mode, so a spectral-norm parametrization runs no power iteration here. ``inf`` when an
    activation's slope is unbounded (raw polynomial). A model with parameters anywhere else (a
    LayerNorm, an extra linear layer) is refused with a ConfigError rather than given a number
    that leaves them out; parameter-free modules in between are taken as 1-Lipschitz.

    The product bounds a plain chain only: every hidden layer once, in order, then the head. So
    only the library's :class:`~chainzrule.models.MLP`, :class:`~chainzrule.models.ChainzRuleMLP`
    and :class:`~chainzrule.cnn.CNN` (and subclasses that keep their ``forward``) are bounded as
    they are; a model with its own ``forward`` (a residual connection, a layer called twice, a
    scaling between layers) is refused with a ConfigError unless ``assume_chain=True`` states
    that its forward is such a chain, with only 1-Lipschitz parameter-free operations between.

    >>> from chainzrule.models import MLP
    >>> net = MLP(4, [8, 8], 3)
    >>> lipschitz_bound(net) >= float(jacobian_norms(net, torch.randn(10, 4)).max()) / 3 ** 0.5
    True
    """
    if not (assume_chain or type(model).forward in (FeedForward.forward, CNN.forward)):
        raise ConfigError("lipschitz_bound multiplies the layers' bounds, which bounds a plain chain only (each hidden "
                          "layer once, in order, then model.head): expected a chainzrule MLP, ChainzRuleMLP or CNN "
                          f"(or a subclass keeping their forward), got {type(model).__name__} with its own forward; "
                          "pass assume_chain=True if that forward is such a chain")
    layers = hidden_layers(model)
    convs = conv_hidden_layers(model)
    shapes = model.input_shapes() if convs and callable(getattr(model, "input_shapes", None)) else None
    if convs and (shapes is None or len(shapes) != len(convs)):
        raise ConfigError("lipschitz_bound of a model with conv layers needs model.input_shapes() (the spatial input "
                          f"shape of each conv layer), got {type(model).__name__} without it")
    _refuse_uncounted(model, [m for _, m in layers + convs] + [getattr(model, "head", None)])
    with _measuring(model), torch.no_grad():
        bound = _head_bound(model) * temperature_of(model)
        for _, layer in layers:
            bound *= _max_slope(layer) * _spectral_norm(layer.linear.weight)
        for (_, layer), shape in zip(convs, shapes or ()):
            # a certified bound on the conv operator norm (exact up to 4096 inputs); pooling is 1-Lipschitz
            bound *= _max_slope(layer) * layer.operator_norm_bound(shape)
    return float(bound)


def _p99(values: Tensor) -> float:
    return float(np.percentile(values.detach().double().cpu().numpy(), 99))


def layer_report(model: nn.Module, x: Tensor) -> list[dict]:
    """Per dense hidden layer (:class:`~chainzrule.layers.HiddenLayer`; a CNN's conv layers are not
    reported), what it does to sensitivity on the inputs ``x`` (one dict per layer).

    Keys: ``name``; ``jacobian_fro.mean`` and ``jacobian_fro.p99`` of the per-example layer
    Jacobian norm ``||S||_F = sqrt(jacobian_sq)``; ``spectral_norm`` ``||W||_2`` (effective
    weight); ``max_slope`` (certified ``max|σ'|``); ``observed_max_slope`` (``max|σ'(z)|`` seen
    on ``x``, never above ``max_slope`` but for the rounding of σ' in ``x``'s dtype). One forward in eval mode under a DREG collector; the
    caller's modes are restored. ConfigError for an ``x`` without examples (``N = 0``).

    >>> from chainzrule.models import ChainzRuleMLP
    >>> rows = layer_report(ChainzRuleMLP(4, [8, 8], 3), torch.randn(16, 4))
    >>> [r["name"] for r in rows]
    ['hidden_layers.0', 'hidden_layers.1']
    >>> all(r["observed_max_slope"] <= r["max_slope"] + 1e-6 for r in rows)
    True
    """
    _check_examples(x)
    layers = hidden_layers(model)
    inputs: dict[str, Tensor] = {}

    def keep(name):
        def hook(module, args):
            inputs[name] = args[0]

        return hook

    handles = [layer.register_forward_pre_hook(keep(name)) for name, layer in layers]
    rows = []
    try:
        with _measuring(model), torch.no_grad(), dreg.collect(model, always=True) as terms:
            model(x.detach())
        per_example = terms.per_example()
        with torch.no_grad():
            for name, layer in layers:
                fro = per_example[name].clamp_min(0).sqrt()  # [N]
                slope = layer.derivative(inputs[name])  # [..., out]
                rows.append(
                    {
                        "name": name,
                        "jacobian_fro.mean": float(fro.double().mean()),
                        "jacobian_fro.p99": _p99(fro),
                        "spectral_norm": _spectral_norm(layer.linear.weight),
                        "max_slope": _max_slope(layer),
                        "observed_max_slope": float(slope.abs().max()),
                    }
                )
    finally:
        for h in handles:
            h.remove()
    return rows


def sensitivity_summary(
    model: nn.Module,
    x: Tensor,
    method: str = "auto",
    n_proj: int = 8,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """``{"jacobian_fro.mean", "jacobian_fro.p99", "tau_input", "lipschitz_bound"}`` (floats).

    Jacobian norms by :func:`jacobian_norms` (``method``, ``n_proj``, ``batch_size``, ``seed``
    go there) on ``x``; see the module docstring for the definitions. ConfigError for an ``x``
    without examples (``N = 0``: no mean, no p99).

    >>> from chainzrule.models import MLP
    >>> s = sensitivity_summary(MLP(4, [8], 2), torch.randn(32, 4))
    >>> s["jacobian_fro.p99"] <= s["lipschitz_bound"] * 2 ** 0.5
    True
    """
    _check_examples(x)
    norms = jacobian_norms(model, x, method=method, n_proj=n_proj, batch_size=batch_size, seed=seed)
    return {
        "jacobian_fro.mean": float(norms.double().mean()),
        "jacobian_fro.p99": _p99(norms),
        "tau_input": tau_input(norms),
        "lipschitz_bound": lipschitz_bound(model),
    }
