#!/usr/bin/env bash
# Pack the run files of an unfinished fight that no earlier chunk holds into a new chunk, so that the
# fight can be resumed on another machine (see README.md here).
#   bash results/in-progress/pack.sh OUT NAME [DIR]     e.g. OUT=/work/mnist-rerun NAME=mnist
# DIR (default: this script's folder) holds NAME/; CODE_COMMIT (default: this checkout's HEAD)
# names the code that made the runs.
set -euo pipefail
shopt -s nullglob
out=$1; name=$2
here=$(cd "$(dirname "$0")" && pwd); dir=${3:-$here}/$name
mkdir -p "$dir"
cp "$out/spec.json" "$dir/spec.json"
packed=$(mktemp); new=$(mktemp); trap 'rm -f "$packed" "$new"' EXIT
chunks=("$dir"/chunk-*.tar.xz)
for c in "${chunks[@]}"; do tar -tJf "$c"; done | sort > "$packed"
(cd "$out/runs" && ls | grep -E '^[0-9a-f]{20}\.json$' || true) | sort | comm -23 - "$packed" > "$new"
[ -s "$new" ] || { echo "nothing new in $out/runs"; exit 0; }
chunk=$(printf 'chunk-%03d.tar.xz' $((${#chunks[@]} + 1)))
tar -cJf "$dir/$chunk.tmp" -C "$out/runs" -T "$new" && mv "$dir/$chunk.tmp" "$dir/$chunk"
cpu=$({ grep -m1 'model name' /proc/cpuinfo 2>/dev/null || echo ': unknown'; } | cut -d: -f2 | sed 's/^ *//')
[ -e "$dir/chunks.csv" ] || echo "chunk,runs,code,cpu,date" > "$dir/chunks.csv"
echo "$chunk,$(wc -l < "$new"),${CODE_COMMIT:-$(git -C "$here" rev-parse --short HEAD)},\"$cpu\",$(date -u +%F)" >> "$dir/chunks.csv"
echo "$dir/$chunk: $(wc -l < "$new") runs"
