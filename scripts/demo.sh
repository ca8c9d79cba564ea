#!/usr/bin/env bash
# Installs dependencies, builds, writes the synthetic example data and runs the
# example pipeline on it. Rerunning resumes: finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
build/medpipe-examplegen --out examples/data
build/medpipe-ctgen --out examples/data/ct --patients 6 --slices 12
build/medpipe run examples/pipeline.yaml
build/medpipe status examples/pipeline.yaml
echo
echo "outputs: examples/work/<stage>/ (dataset.json, report.json, images/):"
echo "  examples/work/four_class/dataset.json       the 4-class dataset (links to annotate's images)"
echo "  examples/work/no_hem_download/report.json   downloaded, filtered and failed counts"
echo "  examples/work/ct_rgb/images/                 3-window RGB PNGs of the synthetic head CT"
