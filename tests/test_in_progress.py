"""results/in-progress/pack.sh and unpack.sh: an unfinished fight's run files survive a new machine."""

import json
import os
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "results" / "in-progress"


def _run(script: str, *args, env=None) -> str:
    out = subprocess.run(["bash", str(SCRIPTS / script), *map(str, args)], check=True, capture_output=True,
                         text=True, env={**os.environ, "CODE_COMMIT": "abc1234", **(env or {})})
    return out.stdout


def _runs(folder: Path, keys) -> None:
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for k in keys:
        (folder / "runs" / f"{k}.json").write_text(json.dumps({"key": k, "result": {"x": k}}))


def test_pack_keeps_each_run_once_and_unpack_restores_them(tmp_path):
    out, store, again = tmp_path / "fight", tmp_path / "store", tmp_path / "resumed"
    _runs(out, [f"{i:020x}" for i in range(3)])
    (out / "spec.json").write_text('{"name": "f"}')
    (out / "runs" / ".0123.json.tmp").write_text("half a run")  # a run being written: not packed
    assert "3 runs" in _run("pack.sh", out, "f", store)
    assert "nothing new" in _run("pack.sh", out, "f", store)
    _runs(out, [f"{i:020x}" for i in range(3, 5)])
    assert "2 runs" in _run("pack.sh", out, "f", store)
    chunks = sorted(p.name for p in (store / "f").glob("chunk-*.tar.xz"))
    assert chunks == ["chunk-001.tar.xz", "chunk-002.tar.xz"]
    lines = (store / "f" / "chunks.csv").read_text().splitlines()
    assert lines[0] == "chunk,runs,code,cpu,date" and [ln.split(",")[:3] for ln in lines[1:]] == [
        ["chunk-001.tar.xz", "3", "abc1234"], ["chunk-002.tar.xz", "2", "abc1234"]]
    _run("unpack.sh", "f", again, store)
    restored = {p.name: p.read_bytes() for p in (again / "runs").iterdir()}
    assert restored == {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert (again / "spec.json").read_text() == '{"name": "f"}'
