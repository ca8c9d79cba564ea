#!/usr/bin/env bash
# augment benchmark (issues 4 and 8): 3x augmentation of N 512x512 grey PNGs with
# boxes (medpipe-examplegen, annotated by the annotate stage), measured in
# one run:
#
#   medpipe augment stage, default transforms, PNG with png_compression: fast (
#     ISA-L, filter none; image/png.h), 2 threads
#   Python peer (bench/augment_peer.py: OpenCV's Python bindings + numpy, the
#     same transforms and probabilities, PNG by zlib level 1, filter none),
#     two processes on halves,
#     glibc heap trimming off (KNOWN.md); medpipe runs without that setting
#   floor: bench_augment_floor, decoding each input once (cv::imread) and
#     encoding it 3 times (the same PNG writer and settings) on 2 threads, no
#     transforms
#
# Targets (issue 8): medpipe >= 2x the Python peer with files <= 1.15x the
# peer's bytes; medpipe within 20% of the floor (medpipe / floor >= 0.8). CPU per output (user + sys) is printed beside the
# wall times because it stays meaningful when the machine is shared.
#
#   bench/augment_bench.sh [BUILD_DIR] [N]      (default: build, 2000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-2000}
py=/usr/bin/python3  # Debian's, with python3-opencv and numpy
threads=2
copies=3

work=$(mktemp -d /tmp/medpipe-augment-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

slices=50
patients=$(((n + slices - 1) / slices))
"$build/medpipe-examplegen" --out "$work/data" --patients "$patients" --slices "$slices" --size 512 --seed 3 >/dev/null
find "$work/data/images" -type f | sort | tail -n +$((n + 1)) | xargs -r rm -f  # exactly n files
count=$(find "$work/data/images" -type f | wc -l)
find "$work/data/images" -type f -exec cat {} + >/dev/null  # a warm page cache for everyone

# annotate -> augment; annotate assigns no split, so augment takes the
# unsplit images.
cat >"$work/pipeline.yaml" <<YAML
name: augment-bench
workdir: work
seed: 1
stages:
  - id: ann
    kind: annotate
    params: {images: data/images, annotations: data/boxes.coco.json}
  - id: aug
    kind: augment
    inputs: [ann]
    params: {copies: $copies, splits: [unsplit], png_compression: fast}
YAML
"$build/medpipe" run "$work/pipeline.yaml" --until ann --threads "$threads" >/dev/null 2>&1

declare -A wall cpu
# measure NAME CMD...: wall and CPU seconds of CMD (children included).
measure() {
  local name=$1
  shift
  if ! /usr/bin/time -f '%e %U %S' -o "$work/time.$name" "$@" >"$work/out.$name" 2>"$work/err.$name"; then
    echo "augment_bench: $name failed:" >&2
    cat "$work/err.$name" >&2
    exit 1
  fi
  local w u s
  read -r w u s <"$work/time.$name"
  wall[$name]=$w
  cpu[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
}

measure medpipe "$build/medpipe" run "$work/pipeline.yaml" --threads "$threads"
# KNOWN.md: a fair Python peer turns glibc's heap trimming off.
measure python_2proc env MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 bash -c '
  "$0" "$1" --coco "$2" --root "$3" --out "$4" --copies "$5" --shard 0/2 &
  "$0" "$1" --coco "$2" --root "$3" --out "$4" --copies "$5" --shard 1/2 &
  wait -n && wait -n' "$py" "$here/augment_peer.py" "$work/work/ann/dataset.json" "$work/work/ann" "$work/py" "$copies"
measure floor "$build/bench_augment_floor" "$work/data/images" "$work/floor" --copies "$copies" --threads "$threads" \
  --compression fast --filter 0x08

# Each scenario must have done what it claims, or its time means nothing.
outputs=$((count * copies))
made_mp=$(find "$work/work/aug" -name '*_aug*.png' -type f | wc -l)
made_py=$(find "$work/py" -name '*_aug*.png' -type f | wc -l)
made_floor=$(find "$work/floor" -name '*_aug*.png' -type f | wc -l)
for pair in "medpipe:$made_mp" "python:$made_py" "floor:$made_floor"; do
  if [[ ${pair#*:} -ne $outputs ]]; then
    echo "augment_bench: ${pair%%:*} wrote ${pair#*:} copies, expected $outputs" >&2
    exit 1
  fi
done
boxes_in=$(grep -o '"bbox"' "$work/data/boxes.coco.json" | wc -l)
dropped_mp=$(sed -nE 's/.*"boxes_dropped": ([0-9]+).*/\1/p' "$work/work/aug/report.json")
dropped_mp=${dropped_mp:-0}
dropped_py=$(sed -nE 's/.*boxes_dropped=([0-9]+).*/\1/p' "$work/out.python_2proc" | awk '{ s += $1 } END { print s + 0 }')

bytes_of() { find "$1" -name '*_aug*.png' -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
rate() { awk -v n="$outputs" -v s="${wall[$1]}" 'BEGIN { printf "%.1f", n / s }'; }
cpu_ms() { awk -v n="$outputs" -v s="${cpu[$1]}" 'BEGIN { printf "%.2f", 1000 * s / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
both() { # A B: the throughput ratio A/B, and the same from CPU per output
  echo "$(ratio "$(rate "$1")" "$(rate "$2")")  (from CPU per output: $(ratio "$(cpu_ms "$2")" "$(cpu_ms "$1")"))"
}
row() { printf '%-56s %8.2f %10s %14s %12s\n' "$1" "${wall[$2]}" "$(rate "$2")" "$(cpu_ms "$2")" "$3"; }

echo "augment benchmark: $count PNGs 512x512 grey with $boxes_in boxes -> $copies copies each ($outputs outputs), $threads threads or processes"
echo "$(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-56s %8s %10s %14s %12s\n' "" "seconds" "outputs/s" "CPU ms/output" "PNG bytes"
b_mp=$(bytes_of "$work/work/aug")
b_py=$(bytes_of "$work/py")
row "medpipe augment (fast: ISA-L, filter none)" medpipe "$b_mp"
row "python OpenCV+numpy, 2 processes, heap trimming off" python_2proc "$b_py"
row "floor: decode once + encode ${copies}x, no transforms" floor "$(bytes_of "$work/floor")"
echo "boxes dropped (min_visibility 0.3): medpipe $dropped_mp, python $dropped_py (different random draws)"
echo
echo "ratios, measured in this run:"
echo "  medpipe / python, 2 processes:  $(both medpipe python_2proc)  target >= 2"
echo "  PNG bytes, medpipe / python:    $(ratio "$b_mp" "$b_py")  target <= 1.15"
echo "  medpipe / floor:                $(both medpipe floor)  target >= 0.8 (within 20% of the floor's time)"
echo "  copies redrawn (identity draws): $(sed -nE 's/.*"redraws": ([0-9]+).*/\1/p' "$work/work/aug/report.json")"
