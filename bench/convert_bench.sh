#!/usr/bin/env bash
# convert benchmark (issues 3 and 8): N synthetic 512x512 head-CT slices
# (medpipe-ctgen) to brain-window (40/80) 8-bit PNG, measured in one run:
#
#   medpipe convert stage at each PNG back end (image/png.h), 2 threads:
#     fast (ISA-L), small (libdeflate, the default), zlib (level 1, none, Z_RLE:
#     the previous default), and zlib at Pillow's settings (level 6, adaptive)
#   limits: each back end alone encoding the same windowed images, 2 threads,
#     and libpng + zlib alone (the writer medpipe had before) at both settings
#   Python peer (bench/convert_peer.py: pydicom + numpy + Pillow), one process
#   Python peer, two processes on halves, glibc heap trimming off (KNOWN.md)
#   dcm2pnm +Ww 40 80, one process per file, two at a time (a 200-file sample)
#
# Targets (issue 8): with fast >= 7x the two-process Python with files
# <= 1.15x Pillow's; at `small` files <= Pillow's and >= 4x its speed.
# Wall-clock rates are the figures; CPU per file (user + sys, children
# included) is printed beside them because it stays meaningful when the
# machine is shared.
#
#   bench/convert_bench.sh [BUILD_DIR] [N]      (default: build, 1000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-1000}
py=/usr/bin/python3  # Debian's, with numpy, pydicom and PIL (not a pyenv one)
threads=2

work=$(mktemp -d /tmp/medpipe-convert-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

slices=100
patients=$(((n + slices - 1) / slices))
"$build/medpipe-ctgen" --out "$work/ct" --patients "$patients" --slices "$slices" --size 512 --seed 3 >/dev/null
find "$work/ct/dicom" -type f | sort | tail -n +$((n + 1)) | xargs -r rm -f  # exactly n files
count=$(find "$work/ct/dicom" -type f | wc -l)
find "$work/ct/dicom" -type f -exec cat {} + >/dev/null  # a warm page cache for everyone

declare -A wall cpu files
# measure NAME FILES CMD...: wall and CPU seconds of CMD.
measure() {
  local name=$1 nfiles=$2
  shift 2
  if ! /usr/bin/time -f '%e %U %S' -o "$work/time.$name" "$@" >/dev/null 2>"$work/err.$name"; then
    echo "convert_bench: $name failed:" >&2
    cat "$work/err.$name" >&2
    exit 1
  fi
  local w u s
  read -r w u s <"$work/time.$name"
  wall[$name]=$w
  cpu[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
  files[$name]=$nfiles
}
bytes_of() { find "$1" -name '*.png' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

pipeline() { # DIR EXTRA_PARAM_LINES
  mkdir -p "$1"
  {
    echo "name: bench"
    echo "workdir: work"
    echo "stages:"
    echo "  - id: conv"
    echo "    kind: convert"
    echo "    params:"
    echo "      dicoms: $work/ct/dicom"
    echo "      window: brain"
    if [[ -n $2 ]]; then echo "$2"; fi
  } >"$1/pipeline.yaml"
}
pipeline "$work/medpipe_fast" "      png_compression: fast"
pipeline "$work/medpipe_small" "      png_compression: small"
pipeline "$work/medpipe_zlib" "      png_compression: zlib"
pipeline "$work/medpipe_pillow" "      png_compression: zlib
      png_level: 6
      png_filter: none,sub,up,paeth
      png_strategy: default"
for v in fast small zlib pillow; do
  measure "medpipe_$v" "$count" "$build/medpipe" run "$work/medpipe_$v/pipeline.yaml" --threads "$threads"
done
images="$work/medpipe_fast/work/conv/images"

# The limits load the windowed images into memory first; their own lines
# time the encoding alone.
limit() { # NAME ARGS...
  local name=$1 line
  shift
  line=$("$build/bench_png_limit" "$images" --threads "$threads" "$@")
  wall[$name]=$(sed -E 's/.* seconds=([0-9.]+).*/\1/' <<<"$line")
  cpu[$name]=$(sed -E 's/.*cpu_seconds=([0-9.]+).*/\1/' <<<"$line")
  files[$name]=$count
}
limit limit_fast --compression fast
limit limit_small --compression small
limit limit_zlib --compression zlib
limit limit_libpng --libpng --level 1 --strategy 3
limit limit_libpng_pillow --libpng --level 6 --strategy 0 --filter 0xB8

measure python_1proc "$count" "$py" "$here/convert_peer.py" --dicoms "$work/ct/dicom" --out "$work/py1"
measure python_2proc "$count" env MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 bash -c '
  "$0" "$1" --dicoms "$2" --out "$3" --shard 0/2 &
  "$0" "$1" --dicoms "$2" --out "$3" --shard 1/2 &
  wait' "$py" "$here/convert_peer.py" "$work/ct/dicom" "$work/py2"

mkdir -p "$work/dcm2pnm"
find "$work/ct/dicom" -type f | sort | sed -n 1,200p | awk -v out="$work/dcm2pnm" '{ print $0; print out "/" NR ".png" }' \
  >"$work/dcm2pnm.args"
measure dcm2pnm "$(($(wc -l <"$work/dcm2pnm.args") / 2))" \
  xargs -a "$work/dcm2pnm.args" -n 2 -P "$threads" /usr/bin/dcm2pnm +on -il +Ww 40 80

b_fast=$(bytes_of "$images")
b_small=$(bytes_of "$work/medpipe_small/work/conv/images")
b_zlib=$(bytes_of "$work/medpipe_zlib/work/conv/images")
b_pillow_mp=$(bytes_of "$work/medpipe_pillow/work/conv/images")
b_python=$(bytes_of "$work/py1")

rate() { awk -v n="${files[$1]}" -v s="${wall[$1]}" 'BEGIN { printf "%.1f", n / s }'; }
cpu_ms() { awk -v n="${files[$1]}" -v s="${cpu[$1]}" 'BEGIN { printf "%.2f", 1000 * s / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
both() { # A B: the throughput ratio A/B, and the same from CPU per file
  echo "$(ratio "$(rate "$1")" "$(rate "$2")")  (from CPU per file: $(ratio "$(cpu_ms "$2")" "$(cpu_ms "$1")"))"
}
row() { printf '%-52s %8.2f %9s %12s %12s\n' "$1" "${wall[$2]}" "$(rate "$2")" "$(cpu_ms "$2")" "${3:-}"; }

echo "convert benchmark: $count CT slices 512x512 -> brain-window 8-bit PNG, $threads threads or processes"
echo "$(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %8s %9s %12s %12s\n' "" "seconds" "files/s" "CPU ms/file" "PNG bytes"
row "medpipe convert, png_compression: fast (ISA-L)" medpipe_fast "$b_fast"
row "medpipe convert, png_compression: small (default)" medpipe_small "$b_small"
row "medpipe convert, png_compression: zlib (old default)" medpipe_zlib "$b_zlib"
row "medpipe convert, zlib at Pillow's (level 6, adaptive)" medpipe_pillow "$b_pillow_mp"
row "limit: fast alone" limit_fast
row "limit: small alone" limit_small
row "limit: zlib alone" limit_zlib
row "limit: libpng + zlib alone (level 1, none, rle)" limit_libpng
row "limit: libpng + zlib alone, Pillow's settings" limit_libpng_pillow
row "python pydicom+numpy+Pillow, 1 process" python_1proc "$b_python"
row "python, 2 processes, heap trimming off" python_2proc
row "dcm2pnm, a process per file (${files[dcm2pnm]} files)" dcm2pnm
echo
echo "ratios, measured in this run:"
echo "  medpipe fast / python, 2 processes:           $(both medpipe_fast python_2proc)  target >= 7"
echo "  PNG bytes, medpipe fast / Pillow:             $(ratio "$b_fast" "$b_python")  target <= 1.15"
echo "  medpipe small / python, 2 processes:              $(both medpipe_small python_2proc)  target >= 4"
echo "  PNG bytes, medpipe small / Pillow:                $(ratio "$b_small" "$b_python")  target <= 1.00"
echo "  medpipe fast / medpipe zlib (old default):    $(both medpipe_fast medpipe_zlib)"
echo "  medpipe fast / python, 1 process:             $(both medpipe_fast python_1proc)"
echo "  medpipe fast / dcm2pnm per file:              $(both medpipe_fast dcm2pnm)"
echo "  limit fast / libpng + zlib alone:                 $(both limit_fast limit_libpng)"
echo "  limit small / libpng + zlib alone:                $(both limit_small limit_libpng)"
echo "  limit zlib / libpng + zlib alone:                 $(both limit_zlib limit_libpng)"
echo "  limit small / libpng at Pillow's settings:        $(both limit_small limit_libpng_pillow)"
echo "  medpipe fast / limit fast:                    $(both medpipe_fast limit_fast)"
