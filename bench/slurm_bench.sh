#!/usr/bin/env bash
# Slurm executor benchmark (issue 15): one convert stage over N synthetic CT
# slices (medpipe-ctgen, 64x64), measured in one run:
#
#   locally (--threads 2), before and after the Slurm runs
#   through a one-node loopback Slurm cluster (2 CPUs, started as root by the
#     test fixture tests/servers/slurm_cluster.h) with max_tasks 2, 4 and 8,
#     poll_interval 0.5 s, marker_grace 5 s, cpus_per_task 1
#   per run: wall time, Slurm's overhead (wall minus the local wall), the
#     controller's own CPU (user + sys from wait4: `medpipe run` and the
#     Slurm clients it waits for, not the array tasks), wall / local; every
#     Slurm output tree is checked byte-identical to the local one
#
# then, without a cluster, the controller's work outside the tasks for one
# pass of 300,000 items in 64 shards (plan, merge of the journal parts, the
# next resume check). Target (issue 15): under 10 s for 300,000 items.
# The machine's 2 cores are shared: compare the rows, not absolute times.
# Needs root (slurmctld, slurmd and munged run as root) and slurm-wlm, munge.
#
#   bench/slurm_bench.sh [BUILD_DIR] [N]      (default: build, 2000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-2000}

for t in bench_slurm medpipe medpipe-ctgen; do
  if [[ ! -x $build/$t ]]; then
    echo "slurm_bench: $build/$t is missing: cmake --build $build --target bench_slurm medpipe medpipe-ctgen" >&2
    exit 1
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  echo "slurm_bench: the loopback Slurm cluster runs its daemons as root; run this as root" >&2
  exit 1
fi

exec "$build/bench_slurm" --medpipe "$build/medpipe" --ctgen "$build/medpipe-ctgen" --items "$n" \
  --shards 2,4,8 --merge-items 300000 --merge-shards 64
