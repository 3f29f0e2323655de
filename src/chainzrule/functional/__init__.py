"""Pure functions of the Polynomial Engine and of DREG: values in, results out, no state.

The modules (:mod:`chainzrule.poly`, :mod:`chainzrule.layers`, :mod:`chainzrule.conv`) are thin
wrappers over these, in the style of ``torch.nn.functional``. One idea per file: ``basis`` (the
coefficient bases, Horner), ``activation`` (σ, σ', ‖S‖², row norms, the slope bound), ``kernels``
(the hand-written autograd Functions), ``init`` (the whole-line fit), ``conv`` (conv row norms).

**Parametrization.** A polynomial activation of degree D is stored as coefficients θ in a basis of
the *normalized* pre-activation ``t = u / R`` on the working interval ``[-R, R]``:

    p(u) = Σ_k θ_k B_k(u / R)

with ``B_k`` the Legendre polynomials (default), the Chebyshev polynomials, or the monomials
``t^k``; ``"power"`` is the v0.1 engine's basis, monomials of ``u`` itself. Every basis spans the
same functions, so the choice changes *training*, not what a network can compute: Adam moves every
coefficient by about ``lr`` per step, and with a basis bounded by 1 on the interval such a step
moves σ by at most ``lr`` everywhere on it, whatever k. In the power basis a step on θ_3 moves σ at
|u| = 3 by 27·lr (condition number of the Gram matrix on [-3, 3]: ~250 for powers of u, ~7 for
Legendre in t). Why Legendre, measured on MNIST: see ``docs/engine.md``.

:func:`basis_matrix` turns θ into power coefficients ``a`` of ``u`` (``a = M θ``, a fixed
``[D+1, D+1]`` matrix), so there is one evaluation kernel for all bases: Horner's rule in ``u``.

**Range control** is part of σ, so σ' is the exact derivative of what is computed:

- ``"linear"``: σ(z) = p(c) + p'(c)(z - c), c = clamp(z, -R, R): the polynomial on the interval,
  its tangent outside. σ'(z) = p'(c), so ``max|σ'| = max_{|u|≤R} |p'(u)|`` (:func:`poly_max_slope`).
- ``"tanh"``: σ(z) = p(R tanh(z/R)); σ' = p'(u)(1 - tanh²(z/R)).
- ``"none"``: σ = p(z) (slope unbounded; for ablations only).

**DREG.** For ``h = σ(W x + b)`` the layer Jacobian is ``S = diag(σ'(z)) W``, so per example
``||S||_F² = Σ_i σ'(z_i)² ||W_i,:||²`` (:func:`layer_jacobian_sq`).
:func:`poly_activation_and_jacobian_sq` computes σ and this term in one pass, with a hand-written
backward for "linear" and "none" (measured in ``BENCHMARKS.md``).

>>> import torch
>>> a = basis_matrix("legendre", 3, 3.0) @ fit_coefficients("gelu", 3, 3.0, "legendre")  # [4]
>>> z = torch.linspace(-6, 6, 5, dtype=torch.float64).unsqueeze(1)     # [5, 1]
>>> h, slope = poly_activation_and_slope(z, a.unsqueeze(1), 3.0)
>>> [round(float(s), 3) + 0.0 for s in slope[:, 0]]    # GELU-like: slope 0 far left, 1 far right
[0.0, 0.0, 0.5, 1.0, 1.0]
"""

from .activation import (layer_jacobian_sq, linear_and_row_norms_sq, poly_activation, poly_activation_and_jacobian_sq,
                         poly_activation_and_slope, poly_max_slope, row_norms_sq)
from .basis import BASES, DEGREE_LIMIT, INITS, RANGE_CONTROLS, basis_matrix, basis_matrix_np, horner, require_choice
from .conv import PADDING_MODES, conv_layer_jacobian_sq, conv_padding_pairs, conv_row_norms_sq
from .init import ASYMPTOTIC_SLOPES, fit_coefficients, target_activation

__all__ = [
    "ASYMPTOTIC_SLOPES", "BASES", "DEGREE_LIMIT", "INITS", "PADDING_MODES", "RANGE_CONTROLS", "basis_matrix", "basis_matrix_np",
    "conv_layer_jacobian_sq", "conv_padding_pairs", "conv_row_norms_sq", "fit_coefficients", "horner",
    "layer_jacobian_sq", "linear_and_row_norms_sq", "poly_activation", "poly_activation_and_jacobian_sq",
    "poly_activation_and_slope", "poly_max_slope", "require_choice", "row_norms_sq", "target_activation",
]
