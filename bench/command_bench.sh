#!/usr/bin/env bash
# command-stage benchmark (issue 20): the runner's overhead per item of a
# per-item `command` stage running `true` over N items (10,000 by default),
# against GNU parallel (when installed) and a Snakemake-like shell loop
# (`xargs -P2 -n1 true`) over the same N names, measured in the same run;
# then the no-op rerun of the pipeline (every stage up to date).
#
# The N items are the files a whole-stage command stage writes (empty files,
# made before the timing with `--until files`), so the timed run is the
# per-item stage alone: listing the input's manifest, N journaled items of
# one posix_spawn each on 2 threads, the commit.
# Targets: medpipe within 1.2x of xargs -P2; no-op rerun under 0.5 s.
#
# Not yet measured: run it only on a quiet machine (the lead says when).
#
#   bench/command_bench.sh [BUILD_DIR] [N]      (default: build, 10000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-10000}
threads=2

work=$(mktemp -d /tmp/medpipe-command-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat > "$work/pipeline.yaml" <<YAML
workdir: work
stages:
  - id: files
    kind: command
    params:
      run: 'mkdir -p items && cd items && seq -w 1 $n | xargs touch'
  - id: each
    kind: command
    inputs: [files]
    params:
      foreach: {files: 'items/*'}
      run: [true]
YAML

"$build/medpipe" run "$work/pipeline.yaml" --until files --threads "$threads" >/dev/null

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

t0=$(now)
"$build/medpipe" run "$work/pipeline.yaml" --threads "$threads" >/dev/null
t1=$(now)
medpipe_s=$(secs "$t0" "$t1")

t0=$(now)
(cd "$work/work/files/items" && ls | xargs -P"$threads" -n1 true)
t1=$(now)
xargs_s=$(secs "$t0" "$t1")

parallel_s="(GNU parallel not installed)"
if command -v parallel >/dev/null && parallel --version 2>/dev/null | grep -q GNU; then
  t0=$(now)
  (cd "$work/work/files/items" && ls | parallel -j"$threads" true)
  t1=$(now)
  parallel_s=$(secs "$t0" "$t1")
fi

t0=$(now)
"$build/medpipe" run "$work/pipeline.yaml" --threads "$threads" >/dev/null
t1=$(now)
noop_s=$(secs "$t0" "$t1")

echo "items: $n, threads: $threads, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medpipe per-item command stage: ${medpipe_s} s"
echo "xargs -P$threads -n1 true:          ${xargs_s} s"
echo "GNU parallel -j$threads true:       ${parallel_s}"
awk -v m="$medpipe_s" -v x="$xargs_s" -v n="$n" \
  'BEGIN { printf "ratio medpipe/xargs: %.2fx (target <= 1.2x); %.0f us per item\n", m / x, 1e6 * m / n }'
echo "no-op rerun: ${noop_s} s (target < 0.5 s)"
