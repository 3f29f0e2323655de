#!/usr/bin/env bash
# Restore an unfinished fight's run files from its chunks into OUT, to resume it there (README.md).
#   bash results/in-progress/unpack.sh NAME OUT [DIR]     (DIR: as for pack.sh)
set -euo pipefail
shopt -s nullglob
name=$1; out=$2
dir=${3:-$(cd "$(dirname "$0")" && pwd)}/$name
mkdir -p "$out/runs"
[ -e "$out/spec.json" ] || cp "$dir/spec.json" "$out/spec.json"
for c in "$dir"/chunk-*.tar.xz; do tar -xJf "$c" -C "$out/runs" --skip-old-files; done
echo "$out/runs: $(ls "$out/runs" | wc -l) runs"
