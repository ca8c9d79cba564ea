#!/usr/bin/env bash
# Installs dependencies, builds, writes the synthetic example data and runs the
# example pipeline on it. Rerunning resumes: finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
build/medpipe-examplegen --out examples/data
build/medpipe run examples/pipeline.yaml
build/medpipe status examples/pipeline.yaml
echo
echo "outputs: examples/work/<stage>/ (dataset.json, report.json, images/);"
echo "         the 4-class dataset is examples/work/four_class/dataset.json"
