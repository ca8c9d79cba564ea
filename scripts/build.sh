#!/usr/bin/env bash
# Configures and builds medpipe into build/ (or $1), with extra CMake args after.
# Compiles through ccache when it is installed: paths are rewritten relative
# to this checkout, so a fresh clone elsewhere reuses what an earlier build
# of the same sources compiled (the machines have two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
