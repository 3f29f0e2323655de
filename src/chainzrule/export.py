"""Deployment: a trained run as ONNX or a ``torch.export`` program, and the learned polynomials as
formulas.

- :func:`export_model` writes ``model.onnx`` (dynamo exporter; checked with onnxruntime on inputs
  inside and outside the working interval when it is installed) or ``model.pt2``
  (``torch.export.save``). The polynomial kernels trace as plain ops, so the exported graph
  is exactly the eager model (range control included) — no custom operator.
- :func:`formulas` turns every polynomial neuron into a formula of its pre-activation ``x``:
  text that ``sympy.sympify`` reads (``Piecewise`` for the linear continuation outside
  ``[-R, R]``), with the power coefficients of ``x``.

>>> import torch
>>> from chainzrule.poly import PolynomialActivation
>>> act = PolynomialActivation(1, degree=1, init="identity", bound=2.0)
>>> neuron_formula(act, 0, digits=3)
'Piecewise((-2 + 1*(x + 2), x < -2), (0 + 1*x, x <= 2), (2 + 1*(x - 2), True))'
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError, DataError, check_int, is_int
from .poly import PolynomialActivation

FORMATS = ("onnx", "pt2")


def _num(v: float, digits: int) -> str:
    return f"{0.0 if abs(v) < 1e-12 else v:.{digits}g}"  # float noise of the basis change prints as 0


def _poly_text(coef: list[float], var: str, digits: int) -> str:
    """``a0 + a1*var + a2*var**2 ...`` (power coefficients, low → high)."""
    terms = [_num(coef[0], digits)]
    for k, c in enumerate(coef[1:], start=1):
        power = var if k == 1 else f"{var}**{k}"
        terms.append(f"{_num(c, digits)}*{power}")
    return " + ".join(terms).replace("+ -", "- ")


def neuron_formula(act: PolynomialActivation, index: int, digits: int = 6) -> str:
    """σ of neuron ``index`` of ``act`` as a formula of ``x`` (sympy-compatible text)."""
    a = act.power_coefficients().detach().double()[:, index].tolist()  # coefficients of u^k
    R = act.bound
    if act.range_control == "none":
        return _poly_text(a, "x", digits)
    if act.range_control == "tanh":
        return _poly_text(a, f"({_num(R, digits)}*tanh(x/{_num(R, digits)}))", digits)
    value = lambda u: sum(c * u**k for k, c in enumerate(a))  # noqa: E731
    slope = lambda u: sum(k * c * u ** (k - 1) for k, c in enumerate(a) if k)  # noqa: E731
    r = _num(R, digits)
    left = f"{_num(value(-R), digits)} + {_num(slope(-R), digits)}*(x + {r})"
    right = f"{_num(value(R), digits)} + {_num(slope(R), digits)}*(x - {r})"
    inside = _poly_text(a, "x", digits)
    return f"Piecewise(({left}, x < -{r}), ({inside}, x <= {r}), ({right}, True))".replace("+ -", "- ")


def formulas(model: nn.Module, digits: int = 6) -> list[dict]:
    """One entry per polynomial neuron: ``{"layer", "neuron", "formula"}`` (in module order)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, PolynomialActivation):
            out += [{"layer": name, "neuron": i, "formula": neuron_formula(m, i, digits)}
                    for i in range(m.num_features)]
    return out


def _atomic_path(path: Path, write) -> Path:
    """Write through ``write(tmp_path)`` into a temporary file next to ``path``, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: the ONNX check's tolerance, relative to the largest output (at least 1): float32 carries ~1e-7
#: relative precision, and the graphs differ in operation order
ONNX_RTOL = 1e-4


def probe_inputs(in_features: int, scale: float = 10.0, n: int = 64, seed: int = 0) -> torch.Tensor:
    """Inputs ``[n, in_features]`` spread well beyond any working interval (the check of exports)."""
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, in_features, generator=gen)


def check_onnx(path: Path, model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(largest |onnxruntime − torch|, largest |torch output|)`` on ``x`` (needs
    ``pip install 'chainzrule[onnx]'``): float32 rounding grows with the outputs' size, so the
    first is judged against the second."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking an ONNX export needs onnxruntime: pip install 'chainzrule[onnx]'") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    return float(abs(got - want).max()), float(abs(want).max())


def export_model(model: nn.Module, in_features: int, path: str | Path, fmt: str) -> Path:
    """Write ``model`` (eval mode, float32, batch dimension dynamic) to ``path`` as ``fmt``.

    The export is of a float32, eval-mode copy: ``model`` itself keeps its mode and dtype."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    declared = getattr(model, "in_features", None)
    in_features = check_int("in_features", in_features)
    if is_int(declared) and declared != in_features:
        raise ConfigError(f"expected in_features={declared} (the model's input features), got {in_features}")
    path = Path(path)
    model = copy.deepcopy(model).eval().float()  # the caller's model keeps its mode and dtype
    x = probe_inputs(in_features, n=4)
    batch = torch.export.Dim("batch", min=1)
    if fmt == "pt2":
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        return _atomic_path(path, lambda tmp: torch.export.save(program, tmp))
    try:
        import onnxscript  # noqa: F401 - the dynamo exporter needs it
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxscript: pip install 'chainzrule[onnx]'") from None
    with _exporter_noise_off():
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
    return _atomic_path(path, lambda tmp: program.save(tmp))


@contextlib.contextmanager
def _exporter_noise_off():
    """Silence two messages of torch's ONNX exporter that concern torch itself, not the model:
    "torchvision is not installed. Skipping torchvision::nms" (its op registry, once per
    torchvision op) and a FutureWarning of torch's pytree about ``LeafSpec``. Every other warning
    still shows; the export is judged by :func:`check_onnx` either way."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        registry.setLevel(level)


class Standardized(nn.Module):
    """``model((x − mean) / std)``: raw features in, as the run's own training rows came before
    its standardization, so an exported graph takes what the data file holds.

    >>> net = Standardized(nn.Linear(2, 1), [1.0, 2.0], [2.0, 4.0])
    >>> with torch.no_grad():
    ...     _ = net.model.weight.fill_(1.0), net.model.bias.zero_()
    >>> net(torch.tensor([[3.0, 6.0]]))   # (3 − 1) / 2 + (6 − 2) / 4
    tensor([[2.]], grad_fn=<AddmmBackward0>)
    """

    def __init__(self, model: nn.Module, mean, std) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))  # [F]
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))  # [F]
        self.in_features = int(self.mean.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)  # [N, F] -> the model's output


def export_run(run: str | Path, fmt: str) -> tuple[Path, tuple[float, float] | None]:
    """Export the checkpoint in run folder ``run`` to ``run/model.<fmt>``; for ONNX also
    :func:`check_onnx`'s ``(largest error against torch, largest output)`` on inputs inside and far
    outside the working interval (None for pt2).

    A run whose features were standardized (``model.json``'s ``standardization``) is exported
    with that step inside the graph (:class:`Standardized`): the export takes the raw feature
    vector, in the order of ``model.json``'s ``feature_names`` (a CSV's categorical columns one-hot
    encoded there), and its outputs index ``classes``. The graph is float32 whatever the run's
    dtype (a float64 or bfloat16 run's weights are cast), and ONNX is checked against that model."""
    from .checkpoint import load_checkpoint

    folder = Path(run)
    if not folder.is_dir():
        raise DataError(f"{run} is not a run folder: expected a directory written by `chainzrule train --out`")
    model, _, meta = load_checkpoint(folder)
    if not all(bool(p.isfinite().all()) for p in model.parameters()):
        raise DataError(f"{run}: the weights hold NaN/inf (the training run diverged); nothing to export")
    model = model.float()  # the graph is float32 (export_model): a float64 or bfloat16 run is checked as exported
    in_features = int(meta["in_features"])
    stats = meta.get("standardization")
    if stats is not None:
        model = Standardized(model, stats["mean"], stats["std"])  # raw features in, as the data file holds them
    elif "standardization" not in meta:
        print(f"chainzrule: warning: {run} predates saved standardization statistics: the export takes the "
              "features as the model saw them (standardized if the run standardized them)", file=sys.stderr)
    path = folder / f"model.{fmt}"
    if fmt != "onnx":
        return export_model(model, in_features, path, fmt), None
    # written under a temporary name and renamed only once onnxruntime agrees with torch: a refused
    # export leaves no model.onnx behind (and an earlier one untouched)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.", suffix=".tmp.onnx")
    os.close(fd)
    try:
        export_model(model, in_features, tmp, fmt)
        err, scale = check_onnx(Path(tmp), model, torch.cat([probe_inputs(in_features, 0.1),
                                                             probe_inputs(in_features, 10.0)]))
        limit = ONNX_RTOL * max(1.0, scale)
        if not math.isfinite(err) or err > limit:
            raise DataError(f"{path}: onnxruntime differs from torch by {err:.3g} on outputs up to {scale:.3g} "
                            f"(expected <= {limit:.3g}: {ONNX_RTOL:g} x max(1, largest output))")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path, (err, scale)
