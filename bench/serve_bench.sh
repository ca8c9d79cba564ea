#!/usr/bin/env bash
# medpipe serve benchmark (issue 9): REQUESTS requests of 8 images from 4
# concurrent clients on loopback (bench/serve_client.py), against the classify
# stage over the same images in one batch run, both on 2 threads with the
# reference DenseNet121 (scripts/make_reference_model.py, TorchScript).
# Prints the server's images/s, its ratio to the batch stage's, and p50/p99
# request latency. Target: images/s within 85% of the batch stage's.
#
#   bench/serve_bench.sh [BUILD_DIR] [REQUESTS]     (default: build, 200)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
requests=${2:-200}
clients=4
per=8
py=/usr/bin/python3  # Debian's, with python3-torch
port=$((20000 + RANDOM % 20000))

work=$(mktemp -d /tmp/medpipe-serve-bench.XXXXXX)
server=""
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$build/medpipe-cxrgen" --out "$work/img" --images 64 --dicoms 0 --size 512 --square --seed 5 >/dev/null
"$py" "$root/scripts/make_reference_model.py" "$work/model" --no-onnx >/dev/null 2>&1
cat >"$work/p.yaml" <<YAML
name: serve_bench
workdir: work
stages:
  - id: triage
    kind: classify
    params: {source: img, model: model/densenet121_cxr.pt, batch: $per, preset: xrv}
YAML

# The batch stage over the 64 images (model load and freeze included, as a
# server pays them once at start).
start=$(date +%s.%N)
"$build/medpipe" run "$work/p.yaml" --threads 2 >/dev/null 2>&1
end=$(date +%s.%N)
batch_ips=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", 64 / (b - a) }')

"$build/medpipe" serve "$work/p.yaml" --stage triage --port "$port" --threads 2 --output "$work/served" \
  >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
read -r serve_ips p50 p99 wall statuses < <("$py" "$here/serve_client.py" "http://127.0.0.1:$port/predict_batch" \
  "$work/img" "$requests" "$clients" "$per")

printf '%-44s %10s\n' "batch stage, 64 images (images/s)" "$batch_ips"
printf '%-44s %10s\n' "serve, $requests x $per images, $clients clients (images/s)" "$serve_ips"
printf '%-44s %10s\n' "serve / batch (target >= 0.85)" "$(awk -v s="$serve_ips" -v b="$batch_ips" 'BEGIN { printf "%.2f", s / b }')"
printf '%-44s %10s\n' "request latency p50 / p99 (ms)" "$p50 / $p99"
printf '%-44s %10s\n' "serve wall (s), statuses" "$wall $statuses"
