"""The two ways of computing every member's objective at once: :class:`MemberObjective` under
``torch.func.vmap``, and the stacked forward written with grouped matmuls: :class:`GroupedEngine`
(chainzrule's feed-forward networks) and :class:`GroupedKAN` (the B-spline KAN baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import functional as CF
from ..activations import GELU, ReLU, SiLU, Tanh
from ..dreg import collect
from ..errors import ConfigError
from ..kan import KAN, KANLinear, b_spline_bases
from ..layers import HiddenLayer
from ..models import FeedForward
from ..poly import PolynomialActivation
from ..regularizers import Gain
from ..train import task_loss

__all__ = ["MemberObjective", "GroupedEngine", "GroupedKAN"]

#: activations without state: the same module applies to every member
_STATELESS = (ReLU, GELU, SiLU, Tanh)


class MemberObjective(nn.Module):
    """One member's objective, what ``train``'s loop computes for a batch: called through
    ``functional_call`` (the member's weights swapped in) under ``vmap``."""

    def __init__(self, net: nn.Module, reg, kind: str, dreg_on: bool, reg_on: bool) -> None:
        super().__init__()
        self.net, self.reg, self.kind, self.dreg_on, self.reg_on = net, reg, kind, dreg_on, reg_on

    def forward(self, x: Tensor, y: Tensor, lam: Tensor, strength: Tensor):
        """``(objective, task loss, DREG penalty (0 when off), logits)`` of one member's batch."""
        pen = None
        if self.dreg_on:
            with collect(self.net) as terms:
                logits = self.net(x)  # [B, out]
            pen = terms.penalty()
        else:
            logits = self.net(x)
        loss = task_loss(self.kind, logits, y)
        obj = loss if pen is None else loss + lam * pen
        if self.reg_on:
            obj = obj + strength * self.reg.penalty(self.net, x, logits, lambda lg: task_loss(self.kind, lg, y))
        return obj, loss, (pen if pen is not None else loss.new_zeros(())), logits


class GroupedEngine:
    """The same objective as :class:`MemberObjective`, for all members at once with grouped matmuls.

    For the models ``chainzrule`` builds (:class:`~chainzrule.models.FeedForward`: hidden layers of
    ``nn.Linear`` + a polynomial or standard activation, ``nn.Linear`` head) the stacked forward is
    written out: ``baddbmm`` per layer, the activation with each member's own coefficients, each
    member's own ``||S||_F²`` terms and loss. Same arithmetic as
    the model's own forward, without ``vmap``'s per-op wrapping (which costs more than the
    arithmetic of a Pima-sized network). :meth:`supports` says whether a model has that form;
    anything else goes through ``vmap``.
    """

    def __init__(self, net: nn.Module, kind: str, dreg_on: bool, reg_on: bool, regs: list) -> None:
        self.kind, self.dreg_on, self.reg_on = kind, dreg_on, reg_on
        self.regs = regs  # every member's own regularizer (jr: its own seeded generator)
        self.reg_name = regs[0].name
        self.needs_input_grad = regs[0].needs_input_grad
        self.layers = []
        for i, layer in enumerate(net.hidden_layers):
            act = layer.activation
            pre = f"hidden_layers.{i}"
            if isinstance(act, PolynomialActivation):
                self.layers.append((pre, act, act.basis_matrix.detach(), act.bound, act.range_control))
            else:
                self.layers.append((pre, act, None, None, None))
        self.weights = [n for n, p in net.named_parameters() if "weight" in n.rsplit(".", 1)[-1] and p.dim() >= 2]
        # spectral norm (reg "sn"): the eps of each normalized linear map, by module prefix
        linears = [*((f"hidden_layers.{i}.linear", layer.linear) for i, layer in enumerate(net.hidden_layers)),
                   ("head", net.head)]
        eps = {pre: _spectral_norm(mod) for pre, mod in linears}
        self.sn = {pre: e for pre, e in eps.items() if e is not None}

    @staticmethod
    def supports(net: nn.Module, logit_scale: bool = False) -> bool:
        """Whether ``net`` has the form the grouped forward writes out; ``logit_scale``: its head
        carries train.factory's logit-temperature pre-hook (applied here from the configs)."""
        layers = getattr(net, "hidden_layers", None)
        if not isinstance(net, FeedForward) or layers is None or \
                not _plain_or_sn_linear(net.head, pre_hooks=1 if logit_scale else 0):
            return False
        for layer in layers:
            if not isinstance(layer, HiddenLayer) or not _plain_or_sn_linear(layer.linear):
                return False
            if not (isinstance(layer.activation, PolynomialActivation) or type(layer.activation) in _STATELESS):
                return False
        return True

    @staticmethod
    def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``x W^T + b`` per member: ``[M, B, in]``, ``[M, out, in]``, ``[M, out]`` → ``[M, B, out]``."""
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def _weight(self, P: dict[str, Tensor], B: dict[str, Tensor] | None, pre: str, training: bool,
                gains: Tensor | None = None) -> Tensor:
        """The weight ``[M, out, in]`` of the linear map ``pre`` as its module computes it: with
        spectral norm ``W / σ``, ``σ = uᵀ W v``, after one power-iteration step on the members'
        ``u``, ``v`` buffers (updated in place) in training mode — what each access of a
        ``spectral_norm``-parametrized ``weight`` does (torch's ``_SpectralNorm``) — then times
        the members' layer gains ``gains`` ``[M]`` (a hidden layer's ``Gain``; None: 1)."""
        if pre not in self.sn:
            return P[f"{pre}.weight"]
        w = P[f"{pre}.parametrizations.weight.original"]  # [M, out, in]
        u, v = B[f"{pre}.parametrizations.weight.0._u"], B[f"{pre}.parametrizations.weight.0._v"]  # [M, out], [M, in]
        if training:
            with torch.no_grad():
                u.copy_(F.normalize(torch.bmm(w, v.unsqueeze(-1)).squeeze(-1), dim=1, eps=self.sn[pre]))
                v.copy_(F.normalize(torch.bmm(w.transpose(1, 2), u.unsqueeze(-1)).squeeze(-1), dim=1, eps=self.sn[pre]))
        sigma = (u * torch.bmm(w, v.unsqueeze(-1)).squeeze(-1)).sum(dim=1)  # [M]
        w = w / sigma.view(-1, 1, 1)
        return w if gains is None else w * gains.view(-1, 1, 1)

    def logits(self, P: dict[str, Tensor], x: Tensor, dreg: bool, B: dict[str, Tensor] | None = None,
               training: bool = False, taus: Tensor | None = None,
               gains: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """Logits ``[M, B, C]`` and (with ``dreg``) every hidden layer's ``||S||_F²`` ``[M, B]``;
        ``B``: the stacked buffers (spectral norm's power-iteration vectors), ``training``: whether
        spectral norm takes its power-iteration step (training-mode forward), ``taus``: every
        member's logit temperature ``[M]``, ``gains``: every member's spectral-norm layer gain
        ``[M]`` (None: 1)."""
        terms = []
        for pre, act, basis, bound, rc in self.layers:
            w = self._weight(P, B, f"{pre}.linear", training, gains)  # [M, out, in]
            z = self._linear(x, w, P.get(f"{pre}.linear.bias"))  # [M, B, out]
            if basis is not None:
                # members folded into the feature axis, [B, M·F]: the polynomial acts per feature, so
                # chainzrule.functional's own kernels see one wide layer with per-feature coefficients
                m, b, f = z.shape
                a = torch.matmul(basis, P[f"{pre}.activation.coefficients"])  # [M, D+1, F] power coefficients
                af = a.transpose(0, 1).reshape(a.shape[1], m * f)  # [D+1, M·F]
                zf = z.transpose(0, 1).reshape(b, m * f)  # [B, M·F]
                if dreg:
                    hf, sf = CF.poly_activation_and_slope(zf, af, bound, rc)
                    slope = sf.view(b, m, f).transpose(0, 1)  # [M, B, F]
                else:
                    hf = CF.poly_activation(zf, af, bound, rc)
                x = hf.view(b, m, f).transpose(0, 1)  # [M, B, F]
            elif dreg:
                x, slope = act.value_and_derivative(z)
            else:
                x = act(z)
            if dreg:
                rn = (w * w).sum(dim=2)  # [M, out]: ||W_i,:||²
                terms.append(torch.matmul(slope * slope, rn.unsqueeze(-1)).squeeze(-1))  # [M, B]
        if taus is not None:  # the logit temperature: the head's input times τ (train.factory's pre-hook)
            x = x * taus.view(-1, 1, 1)
        return self._linear(x, self._weight(P, B, "head", training), P.get("head.bias")), terms

    def __call__(self, P: dict[str, Tensor], x: Tensor, y: Tensor, lam: Tensor, strength: Tensor,
                 members: list[int], B: dict[str, Tensor] | None = None, taus: Tensor | None = None,
                 gains: Tensor | None = None):
        """``(objective, task loss, DREG penalty, logits)``: ``[M]``, ``[M]``, ``[M]``, ``[M, B, C]``
        for the members ``members`` (their indices in the batch, one per slot of the stack); a
        training-mode forward (``B``: the stacked buffers of those members, updated in place;
        ``taus``: their logit temperatures, ``gains``: their spectral-norm layer gains)."""
        if self.needs_input_grad:
            x = x.requires_grad_(True)
        logits, terms = self.logits(P, x, self.dreg_on, B, training=True, taus=taus, gains=gains)
        m = y.shape[0]
        loss = _member_losses(logits, y)
        if self.dreg_on:
            pen = torch.stack([t.mean(dim=1) for t in terms], dim=1).sum(dim=1)  # [M]: Σ_l mean_x ||S_l||²
            obj = loss + lam * pen
        else:
            pen = loss.new_zeros(m)
            obj = loss
        if self.reg_on:
            obj = obj + strength * self._penalty(P, x, logits, loss, members)
        return obj, loss, pen, logits

    def _penalty(self, P: dict[str, Tensor], x: Tensor, logits: Tensor, loss: Tensor, members: list[int]) -> Tensor:
        """Every member's un-scaled regularizer term ``[M]`` (what ``reg.penalty`` gives one run).

        Members never interact, so one ``autograd.grad`` of the sum over members gives every
        member its own input gradient (igp, jr)."""
        m, b = logits.shape[:2]
        if self.reg_name == "wd":  # Σ ||W||_F² over weight matrices, in module order
            total = loss.new_zeros(m)
            for n in self.weights:
                total = total + (P[n] * P[n]).sum(dim=(1, 2))
            return total
        if self.reg_name == "igp":  # mean_x ||∇_x L(f(x), y)||², L the per-example loss
            (g,) = torch.autograd.grad((loss * b).sum(), x, create_graph=True)  # [M, B, D]
            return g.reshape(m, b, -1).pow(2).sum(dim=2).mean(dim=1)
        if self.reg_name == "jr":  # C / n_proj · mean_x Σ_v ||vᵀ J||², v from each member's own generator
            out = logits.reshape(m, b, -1)  # [M, B, C]
            c = out.shape[2]
            n_proj = self.regs[members[0]].n_proj
            total = loss.new_zeros(m)
            for _ in range(n_proj):
                v = torch.stack([self.regs[i].directions(b, c, out) for i in members])  # [M, B, C]
                (vj,) = torch.autograd.grad(out, x, grad_outputs=v, create_graph=True)  # [M, B, D]
                total = total + vj.reshape(m, b, -1).pow(2).sum(dim=(1, 2))
            return total * (c / (n_proj * b))
        raise ConfigError(f"reg {self.reg_name!r} is not batched")  # pragma: no cover (batchable refuses it)


class GroupedKAN:
    """The objective of :class:`MemberObjective` for stacked :class:`~chainzrule.kan.KAN` members,
    written with grouped matmuls: per layer the B-spline bases of ``[M, B, in]`` (elementwise, so
    each member's own) and two ``bmm`` — the layer's two ``F.linear`` with each member's weights,
    without ``vmap``'s wrapping of every op (training 10 Pima KAN members: 0.80 s, against 0.94 s
    under vmap and 1.84 s one by one; ``benchmarks/bench_kan_engines.py``). Plain KANs only: no input LayerNorm,
    logit temperature, DREG or loss-side regularizer (:meth:`supports`; those go through ``vmap``)."""

    def __init__(self, net: KAN) -> None:
        self.layers = [(f"layers.{i}", layer.grid.detach(), layer.spline_order, layer.base_activation)
                       for i, layer in enumerate(net.layers)]

    @staticmethod
    def supports(net: nn.Module, dreg_on: bool, reg_on: bool) -> bool:
        """Whether ``net`` is a plain KAN of :class:`~chainzrule.kan.KANLinear` layers with a
        stateless base activation and no hooks, trained without DREG or a loss-side regularizer."""
        if type(net) is not KAN or dreg_on or reg_on or net._forward_hooks or net._forward_pre_hooks:
            return False
        return all(type(layer) is KANLinear and not layer._forward_hooks and not layer._forward_pre_hooks
                   and type(layer.base_activation) in (nn.SiLU, nn.ReLU, nn.GELU, nn.Tanh)
                   for layer in net.layers)

    def logits(self, P: dict[str, Tensor], x: Tensor) -> Tensor:
        """Logits ``[M, B, C]`` of ``x`` ``[M, B, D]``."""
        for pre, grid, order, act in self.layers:
            m, b, _ = x.shape
            bw, sw = P[f"{pre}.base_weight"], P[f"{pre}.spline_weight"]  # [M, out, in], [M, out, in, G + K]
            base = torch.bmm(act(x), bw.transpose(1, 2))  # [M, B, out]
            bases = b_spline_bases(x, grid.to(x.dtype), order)  # [M, B, in, G + K]
            spline = torch.bmm(bases.view(m, b, -1), sw.reshape(m, sw.shape[1], -1).transpose(1, 2))  # [M, B, out]
            x = base + spline
        return x

    def __call__(self, P: dict[str, Tensor], x: Tensor, y: Tensor):
        """``(objective, task loss, DREG penalty (zeros), logits)``: ``[M]``, ``[M]``, ``[M]``, ``[M, B, C]``."""
        logits = self.logits(P, x)
        loss = _member_losses(logits, y)
        return loss, loss, loss.new_zeros(y.shape[0]), logits


def _member_losses(logits: Tensor, y: Tensor) -> Tensor:
    """Every member's batch-mean cross-entropy: ``[M, B, C]``, ``[M, B]`` → ``[M]``."""
    m, b = y.shape
    return F.cross_entropy(logits.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b).mean(dim=1)


def _spectral_norm(mod: nn.Module) -> float | None:
    """The ``eps`` of the spectral norm if ``mod.weight`` is parametrized by one torch ``spectral_norm``
    (one power-iteration step per access, a 2-d weight), optionally followed by a
    :class:`~chainzrule.regularizers.Gain` (its value comes from the members' configs), else None."""
    if not parametrize.is_parametrized(mod, "weight"):
        return None
    plist = mod.parametrizations.weight
    if not 1 <= len(plist) <= 2 or type(plist[0]).__name__ != "_SpectralNorm" or \
            (len(plist) == 2 and not isinstance(plist[1], Gain)):
        return None
    sn = plist[0]
    if sn.n_power_iterations != 1 or sn.dim != 0 or plist.original.dim() != 2:
        return None
    return float(sn.eps)


def _plain_or_sn_linear(mod: nn.Module, pre_hooks: int = 0) -> bool:
    """An ``nn.Linear`` without hooks of its own (up to ``pre_hooks`` forward pre-hooks), its
    weight plain or spectrally normalized."""
    if not isinstance(mod, nn.Linear) or mod._forward_hooks or len(mod._forward_pre_hooks) > pre_hooks:
        return False
    return type(mod) is nn.Linear or _spectral_norm(mod) is not None
