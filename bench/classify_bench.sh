#!/usr/bin/env bash
# classify benchmark (issue 9): N 512x512 synthetic chest radiographs
# (medpipe-cxrgen --square), the reference DenseNet121 (1 channel, 18
# outputs, randomised BatchNorm statistics; scripts/make_reference_model.py),
# 2 threads, batch 1 and 8, end to end (decode, preprocess, infer, write),
# measured in one run:
#
#   medpipe classify, TorchScript (libtorch, frozen + optimize_for_inference)
#   medpipe classify, ONNX (OpenCV dnn)
#   PyTorch eager from Python (bench/classify_peer.py: python3-torch on
#     OpenBLAS, torch.set_num_threads(2), decode and preprocessing in NumPy/cv2)
#   floor: bench_classify_forward, the bare TorchScript forward pass of
#     random inputs through infer/ (no decode, no preprocessing, no writes)
#
# Targets: medpipe TorchScript >= 1.7x PyTorch eager at batch 1, >= 1.2x at
# batch 8; the stage's overhead over its bare forward pass under 10%
# (floor / stage <= 1.1). CPU per image (user + sys) is printed beside the
# wall times because it stays meaningful when the machine is shared.
#
#   bench/classify_bench.sh [BUILD_DIR] [N]      (default: build, 300)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-300}
py=/usr/bin/python3  # Debian's, with python3-torch, python3-opencv and numpy
threads=2

work=$(mktemp -d /tmp/medpipe-classify-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$build/medpipe-cxrgen" --out "$work/img" --images "$n" --dicoms 0 --size 512 --square --seed 5 >/dev/null
"$py" "$root/scripts/make_reference_model.py" "$work/model" >/dev/null 2>&1

# Runs a command, prints "wall_s cpu_s" (user + sys of it and its children).
timed() {
  local t
  t=$( { /usr/bin/time -f '%e %U %S' "$@" >"$work/out.txt" 2>"$work/err.txt"; } 2>&1 | tail -1) || {
    cat "$work/err.txt" >&2
    return 1
  }
  tail -1 "$work/err.txt" | awk '{print $1, $2 + $3}'
}

declare -A wall cpu
run_stage() {  # name model batch
  cat >"$work/$1.yaml" <<YAML
workdir: $work/work_$1
stages:
  - id: triage
    kind: classify
    params: {source: $work/img, model: $work/model/$2, batch: $3}
YAML
  read -r w c < <(timed "$build/medpipe" run "$work/$1.yaml" --threads $threads)
  wall[$1]=$w cpu[$1]=$c
}
run_peer() {  # name batch
  read -r w c < <(timed "$py" "$here/classify_peer.py" "$work/img" "$work/$1.csv" --batch "$2" --threads $threads)
  wall[$1]=$w cpu[$1]=$c
}
run_floor() {  # name batch
  read -r w c < <(timed "$build/bench_classify_forward" "$work/model/densenet121_cxr.pt" "$2" "$n" $threads)
  wall[$1]=$w cpu[$1]=$c
}

for b in 1 8; do
  run_stage "torch_b$b" densenet121_cxr.pt $b
  run_stage "onnx_b$b" densenet121_cxr.onnx $b
  run_peer "eager_b$b" $b
  run_floor "floor_b$b" $b
done

echo "classify: $n images 512x512, DenseNet121 1x224x224 -> 18, $threads threads ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-36s %10s %10s %12s\n' "" "images/s" "wall s" "cpu ms/img"
row() { printf '%-36s %10.2f %10.2f %12.1f\n' "$1" "$(echo "$n / ${wall[$2]}" | bc -l)" "${wall[$2]}" "$(echo "1000 * ${cpu[$2]} / $n" | bc -l)"; }
for b in 1 8; do
  row "medpipe classify TorchScript, b$b" "torch_b$b"
  row "medpipe classify ONNX (OpenCV), b$b" "onnx_b$b"
  row "PyTorch eager (Python), b$b" "eager_b$b"
  row "bare forward (TorchScript), b$b" "floor_b$b"
done
for b in 1 8; do
  printf 'batch %s: TorchScript / PyTorch eager %.2fx, / OpenCV dnn %.2fx; stage / bare forward time %.2f\n' "$b" \
    "$(echo "${wall[eager_b$b]} / ${wall[torch_b$b]}" | bc -l)" \
    "$(echo "${wall[onnx_b$b]} / ${wall[torch_b$b]}" | bc -l)" \
    "$(echo "${wall[torch_b$b]} / ${wall[floor_b$b]}" | bc -l)"
done
