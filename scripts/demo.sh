#!/usr/bin/env bash
# Installs dependencies, builds, writes the synthetic example data and runs
# the main job on it: the hemorrhage v4 workflow (configs/hemorrhage_v4.yaml),
# and the small example pipeline (examples/pipeline.yaml). Rerunning resumes:
# finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build

# Example data (deterministic; regenerated only when missing).
if [[ ! -f examples/data/v4/ct/feedback.csv ]]; then
  build/medpipe-examplegen --out examples/data/v4/v3 --classes IPH,IVH,SAH,SDH --prefix V3 \
    --patients 30 --slices 10 --seed 11
  build/medpipe-examplegen --out examples/data/v4/roboflow --roboflow --patients 30 --slices 8 --seed 12
  build/medpipe-ctgen --out examples/data/v4/ct --patients 80 --slices 4 --seed 13
fi
if [[ ! -f examples/data/ct/feedback.csv ]]; then
  build/medpipe-examplegen --out examples/data
  build/medpipe-ctgen --out examples/data/ct --patients 6 --slices 12
fi

build/medpipe run configs/hemorrhage_v4.yaml
build/medpipe status configs/hemorrhage_v4.yaml
build/medpipe run examples/pipeline.yaml

# CT-RATE training prep: volumes -> tensors, 5 patient-grouped folds, class weights.
if [[ ! -f examples/data/ct_rate/labels.csv ]]; then
  build/medpipe-ctvolgen --out examples/data/ct_rate --patients 16 --size 96 --slices 48 --dicom-patients 2 --seed 5
fi
build/medpipe run configs/ct_rate.yaml
# The echo-quality dataset (configs/echo_quality.yaml) on synthetic cines.
if [[ ! -f examples/data/echo/results/inference_output/summary.json ]]; then
  build/medpipe-echogen --out examples/data/echo --patients 24 --clips 4 --seed 21
fi
build/medpipe run configs/echo_quality.yaml
# Chest X-ray triage (configs/cxr_triage.yaml): synthetic radiographs and the
# UNTRAINED reference DenseNet121 (python3-torch writes it once).
if [[ ! -f examples/data/cxr/cxr_0000.png ]]; then
  build/medpipe-cxrgen --out examples/data/cxr --images 24 --dicoms 4 --seed 7
fi
if [[ ! -f examples/models/densenet121_cxr.pt ]]; then
  /usr/bin/python3 scripts/make_reference_model.py examples/models --no-onnx --calibrate examples/data/cxr >/dev/null 2>&1
fi
build/medpipe run configs/cxr_triage.yaml

cat <<'MSG'

outputs:
  examples/work/hemorrhage_v4/6class_coco/{train,valid,test}/_annotations.coco.json
                                   the balanced, augmented, validated 6-class dataset
  examples/work/hemorrhage_v4/4class_coco/   the 4-class version (links, not copies)
  examples/work/hemorrhage_v4/analysis/analysis.txt   per-split counts and negative share
  examples/work/hemorrhage_v4/checked/validation.json every check and its result
  examples/work/hemorrhage_v4/6class_coco/dataset.csv one row per image
  examples/work/<stage>/           the small example pipeline's stages
  examples/work/ct_rate/folds/folds.csv, folds/fold_<k>/{train,val}.csv, class_weights.json
                                   CT-RATE folds over examples/work/ct_rate/prep/volumes/*.npy
  examples/work/echo_quality/dataset/echo_annotations_enhanced.csv
                                   the echo-quality layout and CSV (+ per-split CSVs)
  examples/work/cxr_triage/triage/{High,Medium,Low,no_finding}/   chest X-rays by risk level (links)
  examples/work/cxr_triage/triage/results.{csv,json}, summary.json   per-image results (untrained model!)
  build/medpipe serve configs/cxr_triage.yaml --stage triage --port 8080   the same as a web page and API
MSG
echo
echo "report (open in any browser; it fetches nothing):"
echo "  file://$PWD/examples/work/hemorrhage_v4/report/report.html"
echo "  file://$PWD/examples/work/report/report.html"
