"""Writing recomputed values into a committed fight's ``results.csv``, nothing else (for the migrations here).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "results.csv").write_text("key,apgd_0.1,test_accuracy\\nab,0.5,0.9\\ncd,0.4,0.8\\n")
>>> rec = {"key": "ab", "result": {"robustness": {"apgd_0.1": 0.25}}}
>>> write_cells(folder, {"ab": rec}, lambda r: ["apgd_0.1"])
>>> print((folder / "results.csv").read_text(), end="")
key,apgd_0.1,test_accuracy
ab,0.25,0.9
cd,0.4,0.8
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

from chainzrule.data.cache import atomic_write_text


def write_cells(folder: Path, fixed: dict[str, dict], names: Callable[[dict], list[str]]) -> None:
    """Write ``rec["result"]["robustness"][name]`` for each ``name in names(rec)`` of each record in
    ``fixed`` (key → run record) into its row of ``folder/results.csv`` (empty for None)."""
    path = folder / "results.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    head = rows[0]
    key = head.index("key")
    for r in rows[1:]:
        rec = fixed.get(r[key])
        for name in names(rec) if rec is not None else []:
            if name in head:
                v = rec["result"]["robustness"][name]
                r[head.index(name)] = "" if v is None else repr(float(v))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    atomic_write_text(path, out.getvalue())
