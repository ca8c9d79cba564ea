#!/bin/bash
# Download throughput: the medpipe download stage against `curl --parallel
# --parallel-max 32` and a serial loop, on the same URL list from the same
# loopback server, which waits 50 ms before every answer (a link's latency).
#
# Fetch only on every side: medpipe runs with `fetch_only: true` (each body
# written to dicom/<name>.dcm through its atomic-write and item-journal path,
# no DICOM conversion), curl writes each body to a file. Conversion is
# measured by bench/convert_bench.sh; the extra line "medpipe fetch+convert"
# is shown for information only, outside the ratios.
#
# Usage: bench/download_bench.sh [BUILD_DIR] (default: build)
# Env: N (objects, 2000), SERIAL_N (objects for the serial loop, 300: it runs
# at ~1/latency objects/s, so its throughput is measured on a prefix),
# DELAY_MS (50).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
MEDPIPE="$BUILD/medpipe"
N="${N:-2000}"
SERIAL_N="${SERIAL_N:-300}"
DELAY_MS="${DELAY_MS:-50}"
PY=/usr/bin/python3
SRC=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm

[ -x "$MEDPIPE" ] || { echo "no medpipe binary at $MEDPIPE (build first, or pass the build dir)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 2; }

WORK="$(mktemp -d /tmp/medpipe-download-bench.XXXXXX)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/root"
for i in $(seq 0 $((N - 1))); do ln -s "$SRC" "$WORK/root/o$i.dcm"; done
SIZE=$(stat -L -c %s "$SRC")

"$PY" "$ROOT/tests/servers/fault_server.py" --root "$WORK/root" --delay-ms "$DELAY_MS" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q '^PORT ' "$WORK/server.log" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/^PORT //p' "$WORK/server.log")
[ -n "$PORT" ] || { echo "server did not start: $(cat "$WORK/server.log")" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"

{
  echo "image_url,label,patient_id"
  for i in $(seq 0 $((N - 1))); do echo "$BASE/files/o$i.dcm,TN,P$i"; done
} > "$WORK/list.csv"

now() { date +%s.%N; }
elapsed() { "$PY" -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
rate() { "$PY" -c "import sys; print('%.1f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

# curl --parallel: one config file with url/output pairs.
mkdir -p "$WORK/curl_par"
for i in $(seq 0 $((N - 1))); do printf 'url = "%s/files/o%d.dcm"\noutput = "%s/curl_par/o%d.dcm"\n' "$BASE" "$i" "$WORK" "$i"; done \
  > "$WORK/curl_par.cfg"
t0=$(now)
curl --parallel --parallel-max 32 --silent --no-progress-meter --fail -K "$WORK/curl_par.cfg" 2> "$WORK/curl_par.err" ||
  { cat "$WORK/curl_par.err" >&2; exit 1; }
t1=$(now)
CURL_S=$(elapsed "$t0" "$t1")
[ "$(ls "$WORK/curl_par" | wc -l)" -eq "$N" ] || { echo "curl --parallel fetched $(ls "$WORK/curl_par" | wc -l) of $N" >&2; exit 1; }

# Serial: one transfer at a time on a reused connection (curl -K without -Z),
# as the seed's Python script fetched one object after another.
mkdir -p "$WORK/curl_ser"
for i in $(seq 0 $((SERIAL_N - 1))); do printf 'url = "%s/files/o%d.dcm"\noutput = "%s/curl_ser/o%d.dcm"\n' "$BASE" "$i" "$WORK" "$i"; done \
  > "$WORK/curl_ser.cfg"
t0=$(now)
curl --silent --show-error --fail -K "$WORK/curl_ser.cfg"
t1=$(now)
SER_S=$(elapsed "$t0" "$t1")

run_medpipe() {  # $1: name, $2: extra params
  mkdir -p "$WORK/$1"
  cp "$WORK/list.csv" "$WORK/$1/list.csv"
  printf 'name: bench\nworkdir: work\nstages:\n  - id: dl\n    kind: download\n    params:\n      csv: list.csv\n      filter_slice_thickness: []\n%b' "$2" \
    > "$WORK/$1/pipeline.yaml"
  local t0 t1
  t0=$(now)
  "$MEDPIPE" run "$WORK/$1/pipeline.yaml" > "$WORK/$1/out.log" 2>&1 || { cat "$WORK/$1/out.log" >&2; exit 1; }
  t1=$(now)
  elapsed "$t0" "$t1"
}
MP64_S=$(run_medpipe mp64 "      fetch_only: true\n      concurrency: 64\n")
MP32_S=$(run_medpipe mp32 "      fetch_only: true\n      concurrency: 32\n")
[ "$(ls "$WORK/mp64/work/dl/dicom" | wc -l)" -eq "$N" ] || { echo "medpipe fetched $(ls "$WORK/mp64/work/dl/dicom" | wc -l) of $N" >&2; exit 1; }
cmp -s "$WORK/mp64/work/dl/dicom/o7.dcm" "$SRC" || { echo "medpipe output differs from the source" >&2; exit 1; }
MPCONV_S=$(run_medpipe mpconv "      window: brain\n")

CURL_R=$(rate "$N" "$CURL_S"); SER_R=$(rate "$SERIAL_N" "$SER_S")
MP64_R=$(rate "$N" "$MP64_S"); MP32_R=$(rate "$N" "$MP32_S"); MPCONV_R=$(rate "$N" "$MPCONV_S")
ratio() { "$PY" -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

echo "download benchmark: $N objects of $SIZE bytes, loopback server with ${DELAY_MS} ms before each answer, $(nproc) cores"
printf '%-40s %8s %10s %14s %12s\n' "tool" "objects" "seconds" "objects/s" "vs curl -Z"
printf '%-40s %8d %10.2f %14s %12s\n' "curl --parallel --parallel-max 32" "$N" "$CURL_S" "$CURL_R" "1.00x"
printf '%-40s %8d %10.2f %14s %12s\n' "serial loop (curl, one at a time)" "$SERIAL_N" "$SER_S" "$SER_R" "$(ratio "$SER_R" "$CURL_R")"
printf '%-40s %8d %10.2f %14s %12s\n' "medpipe download, fetch_only, conc. 64" "$N" "$MP64_S" "$MP64_R" "$(ratio "$MP64_R" "$CURL_R")"
printf '%-40s %8d %10.2f %14s %12s\n' "medpipe download, fetch_only, conc. 32" "$N" "$MP32_S" "$MP32_R" "$(ratio "$MP32_R" "$CURL_R")"
printf '%-40s %8d %10.2f %14s %12s\n' "(info) medpipe fetch+convert brain PNG" "$N" "$MPCONV_S" "$MPCONV_R" "-"
echo "medpipe (concurrency 64) vs serial loop: $(ratio "$MP64_R" "$SER_R"); target vs curl --parallel: >= 0.90x"
