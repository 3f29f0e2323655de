"""The README's library example runs as written, and the names it lists exist (a section that
the issue asks for; it was once dropped by an unrelated README edit)."""

import re
from pathlib import Path

import chainzrule as cz

README = Path(__file__).resolve().parents[1] / "README.md"


def _library_section() -> str:
    text = README.read_text()
    start = text.index("## The library in 20 lines")
    return text[start:text.index("\n## ", start + 1)]


def test_the_library_example_runs_as_written():
    section = _library_section()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "return_jacobian=True" in code and "cz.collect(model)" in code  # the explicit DREG calls
    assert len(code.strip().splitlines()) <= 20
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["jsq"].shape == (128, 2) and scope["loss"].isfinite()
    assert set(scope["terms"].per_layer()) == {"hidden_layers.0", "hidden_layers.1"}


def test_the_listed_api_exists():
    section = _library_section()
    listed = set(re.findall(r"`(?:cz\.)?([A-Za-z_]\w*)\(", section))  # `name(` in code spans
    top = {n for n in listed if n[0].isupper() or n in cz.__all__}
    missing = sorted(n for n in top if not hasattr(cz, n) and n not in {"CNN"})
    assert not missing, missing
    diagnostics = re.search(r"- Diagnostics: (.*?)\.\n", section, re.S).group(1)
    names = re.findall(r"`(\w+)`", diagnostics)
    assert len(names) == 7 and all(hasattr(cz, n) for n in names), names
    assert (README.parent / "examples" / "transformer_block.py").is_file()


def test_every_flag_in_the_readme_commands_exists(capsys):
    """Each `chainzrule SUB --flag` of the README's shell blocks is an option of SUB."""
    import pytest

    from chainzrule.cli import main

    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"chainzrule (\w+)(.*)", line.split("#")[0])
            if m:
                commands.append((m.group(1), re.findall(r"(--[\w-]+)", m.group(2))))
    assert len(commands) >= 20
    helps = {}
    for sub, flags in commands:
        if sub not in helps:
            with pytest.raises(SystemExit):
                main([sub, "--help"])
            helps[sub] = capsys.readouterr().out
        missing = [f for f in flags if f not in helps[sub]]
        assert not missing, (sub, missing)
