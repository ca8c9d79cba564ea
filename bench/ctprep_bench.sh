#!/usr/bin/env bash
# ctprep and folds benchmarks (issue 10), measured in one run.
#
# ctprep: N synthetic chest CTs (medpipe-ctvolgen, SIZE x SIZE x SLICES int16
# .nii.gz, spacings 0.6-0.85 mm in plane, 1-2.5 mm between slices) to
# 3-window CLAHE float16 tensors at 0.75 x 0.75 x 1.5 mm cropped/padded to
# 480 x 480 x 240: the medpipe ctprep stage on 2 threads against
# bench/ctprep_peer.py (nibabel + numpy + scipy.ndimage.zoom + cv2, two
# processes). Peak RSS is GNU time's maximum resident set (for the Python
# pool, of its largest process). Targets: >= 4x the Python script, and peak
# RSS under 2 x threads x one volume's float32 size.
#
# folds: bench_ct_folds (50,000 volumes, 20,000 patients, 18 labels) beside
# scikit-learn's StratifiedGroupKFold(shuffle=False, rarest label) and
# GroupKFold on the same items (bench/ct_folds_peer.py). Target: < 2 s.
#
#   bench/ctprep_bench.sh [BUILD_DIR] [N] [SIZE] [SLICES]   (default: build, 40, 512, 200)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-40}
size=${3:-512}
slices=${4:-200}
py=/usr/bin/python3  # Debian's, with nibabel, scipy, OpenCV (not a pyenv one)
threads=2

work=$(mktemp -d /tmp/medpipe-ctprep-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# N volumes: patients with 1-4 volumes each; keep exactly N.
"$build/medpipe-ctvolgen" --out "$work/data" --patients "$n" --size "$size" --slices "$slices" \
  --dicom-patients 0 --seed 9 >/dev/null
find "$work/data/volumes" -name '*.nii.gz' | sort | tail -n +$((n + 1)) | xargs -r rm -f
count=$(find "$work/data/volumes" -name '*.nii.gz' | wc -l)
cat "$work/data/volumes"/*.nii.gz >/dev/null  # a warm page cache for both

cat >"$work/pipeline.yaml" <<YAML
name: bench
workdir: work
stages:
  - id: prep
    kind: ctprep
    params:
      volumes: data/volumes
      metadata_csv: data/metadata.csv
      spacing: [0.75, 0.75, 1.5]
      shape: [480, 480, 240]
      windows: [lung, mediastinum, bone]
      clahe: true
      preview_slices: 0
YAML

measure() { # NAME CMD...: "wall user+sys maxrss_kb"
  local name=$1
  shift
  if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time.$name" "$@" >/dev/null 2>"$work/err.$name"; then
    echo "ctprep_bench: $name failed:" >&2
    cat "$work/err.$name" >&2
    exit 1
  fi
  awk '{ printf "%s %.2f %d\n", $1, $2 + $3, $4 }' "$work/time.$name"
}

read -r mw mc mr < <(measure medpipe "$build/medpipe" run "$work/pipeline.yaml" --threads "$threads")
read -r pw pc pr < <(measure python env MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 \
  "$py" "$here/ctprep_peer.py" "$work/data/volumes" "$work/data/metadata.csv" "$work/py" "$threads")
vol_mb=$(awk -v s="$size" -v z="$slices" 'BEGIN { printf "%.0f", s * s * z * 4 / 1048576 }')

echo
echo "ctprep: $count volumes of ${size}x${size}x${slices} -> 3 x 240 x 480 x 480 float16, $threads threads"
printf '  %-34s %8s %10s %12s\n' "" "wall s" "cpu s" "peak RSS MB"
printf '  %-34s %8.2f %10.2f %12.0f\n' "medpipe ctprep" "$mw" "$mc" "$((mr / 1024))"
printf '  %-34s %8.2f %10.2f %12.0f\n' "Python (nibabel+scipy+cv2, 2 proc)" "$pw" "$pc" "$((pr / 1024))"
awk -v a="$pw" -v b="$mw" -v c="$pc" -v d="$mc" 'BEGIN { printf "  speed-up: %.2fx wall, %.2fx cpu (target >= 4x)\n", a / b, c / d }'
awk -v r="$mr" -v v="$vol_mb" -v t="$threads" \
  'BEGIN { printf "  medpipe peak RSS %.0f MB = %.2f x threads x one float32 volume (%d MB) (target < 2)\n", r / 1024, r / 1024 / (t * v), v }'

echo
echo "folds: 50,000 volumes, 20,000 patients, 18 labels, 5 folds"
"$build/bench_ct_folds" --csv "$work/items.csv" | sed 's/^/  /'
"$py" "$here/ct_folds_peer.py" "$work/items.csv" | sed 's/^/  /'
