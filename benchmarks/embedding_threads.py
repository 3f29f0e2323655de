"""Do the SST-5 sentence embeddings depend on the torch thread count? Encodes the first ``--sentences``
dev sentences with all-MiniLM-L6-v2 once per thread count, each in a fresh process, without the
embedding cache, and compares the results bitwise.

    python benchmarks/embedding_threads.py --data-dir ../shared/data/sst5 --sentences 256 --threads 1 2

Needs ``pip install chainzrule[text]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ENCODE = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from chainzrule.data.text import encode_sentences
from chainzrule.data.text_files import find_sst5_dir, read_sst5_file
texts, _ = read_sst5_file(find_sst5_dir(sys.argv[2] or None) / "dev.txt", limit=int(sys.argv[3]))
np.save(sys.argv[4], encode_sentences(texts, use_cache=False, progress=False))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="the SST-5 folder (default: as the sst5 dataset finds it)")
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.threads:
            path = Path(tmp) / f"E{n}.npy"
            subprocess.run([sys.executable, "-c", ENCODE, str(n), str(args.data_dir or ""), str(args.sentences),
                            str(path)], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            out[n] = np.load(path)
    first = args.threads[0]
    for n in args.threads[1:]:
        same = np.array_equal(out[first], out[n])
        diff = float(np.abs(out[first] - out[n]).max())
        print(f"{args.sentences} dev sentences, {first} vs {n} threads: "
              f"{'bitwise equal' if same else f'differ (max |diff| {diff:.3g})'}")


if __name__ == "__main__":
    main()
