#include "cli/templates.h"

#include <map>

#include "cli/starter_cxr.h"

namespace medpipe {

namespace {

const std::map<std::string, std::string>& Templates() {
  static const std::map<std::string, std::string> templates = {
      {"minimal", R"(# A first medpipe pipeline: a folder of images with COCO boxes, split by
# patient, checked, summarised and exported in Roboflow layout.
#   medpipe validate pipeline.yaml     check this file
#   medpipe run pipeline.yaml          run it (resumes where it stopped)
#   medpipe status pipeline.yaml       what is done, stale and why
# Relative paths are relative to this file. `medpipe stages KIND` lists a
# kind's params; ${VAR:-default} takes a value from the environment.
name: my_dataset
workdir: ${MEDPIPE_WORKDIR:-work}
seed: 1
stages:
  # Images and their boxes; the patient id is read from each file name.
  - id: annotate
    kind: annotate
    params:
      images: data/images
      annotations: data/boxes.coco.json
      patient_pattern: '^(P\d+)_'

  # No patient in two splits; each split's class mix follows the whole.
  - id: split
    kind: split
    inputs: [annotate]
    params:
      ratios: {train: 0.8, valid: 0.1, test: 0.1}

  # Leakage, boxes, files, duplicates: a failed check fails the stage.
  - id: checked
    kind: validate
    inputs: [split]

  - id: analysis
    kind: analyze
    inputs: [checked]

  # What a trainer reads: train/valid/test with _annotations.coco.json.
  - id: export
    kind: export
    inputs: [checked]
)"},
      {"ctprep", R"(# CT volumes to training tensors, then patient-grouped multi-label folds
# (the CT-RATE workflow; configs/ct_rate.yaml in medpipe's source is the full
# example). Volumes are NIfTI files named like CT-RATE's
# (train_<patient>_<scan>_<recon>.nii.gz); rescale and spacing come from the
# metadata CSV, labels from a CSV with VolumeName and one 0/1 column per label.
name: ct_prep
workdir: ${MEDPIPE_WORKDIR:-work}
seed: 42
stages:
  - id: prep
    kind: ctprep
    params:
      volumes: data/volumes
      metadata_csv: data/metadata.csv
      labels_csv: data/labels.csv
      hu_range: [-1000, 400]
      spacing: [0.75, 0.75, 1.5]
      shape: [480, 480, 240]
      windows: [lung, mediastinum, bone]
      clahe: true
      dtype: float16

  # 5 folds, every scan of a patient in one fold, stratified label by label;
  # class weights from each fold's training part only.
  - id: folds
    kind: folds
    inputs: [prep]
    params:
      folds: 5
)"},
      {"cxr", R"(# Chest X-ray triage (configs/cxr_triage.yaml in medpipe's source is the full
# example): a network scores each radiograph (PNG, JPEG or DICOM, MONOCHROME1
# inverted) for 18 findings, and each image is linked into a High, Medium,
# Low or no_finding folder by the level of its findings, with results.csv,
# results.json and summary.json; then analysed and exported as a CSV.
#
# THE MODEL IS AN UNTRAINED STARTER. models/starter_cxr.pt, written by
# `medpipe init`, is a small network with RANDOM weights (seeded): its
# probabilities and risk levels depend on the image but MEAN NOTHING. It is
# only there so this file runs at once. Point `model:` at your own
# TorchScript (.pt) or ONNX (.onnx) export. medpipe's README (its chest X-ray
# triage paragraph) shows how to export torchxrayvision's trained model:
# `python3 scripts/make_reference_model.py OUT --xrv` writes xrv_all.pt
# (give it `output: probabilities`).
#
# data/images/ holds four synthetic starter radiographs: replace them with
# your own images (subfolders are read too).
#   medpipe validate pipeline.yaml     check this file
#   medpipe run pipeline.yaml          run it; work/triage/results.csv
name: cxr_triage
workdir: ${MEDPIPE_WORKDIR:-work}
stages:
  - id: triage
    kind: classify
    params:
      source: data/images
      model: models/starter_cxr.pt
      # Your network's outputs in order; the default is torchxrayvision's 18
      # labels, which the starter network gives too (as logits).
      # labels: [Atelectasis, Consolidation, ...]
      output: logits
      preset: xrv
      batch: 8
      # The level of the most probable label; a label counts from 0.5 on
      # (Pneumothorax from 0.4); an image with none goes to no_finding.
      # `rule: max_risk` takes the most severe level among all counting
      # labels instead. `risk_map` overrides the default label -> level map
      # (`medpipe stages classify` lists it).
      rule: top1
      threshold: 0.5
      thresholds: {Pneumothorax: 0.4}
      unmapped: Low

  - id: analysis
    kind: analyze
    inputs: [triage]

  - id: triage_csv
    kind: export
    inputs: [triage]
    params:
      formats: [csv]
)"},
      {"echo", R"(# An echo-quality training set from an inference run's summary.json
# (configs/echo_quality.yaml in medpipe's source is the full example):
# high-quality clips and natural failures selected evenly across machine
# types, synthetic failures degraded from high-quality clips, a 70/15/15
# patient split that keeps every synthetic clip with its source.
name: echo_quality
workdir: ${MEDPIPE_WORKDIR:-work}
seed: 42
stages:
  - id: results
    kind: inference_results
    params:
      summary: data/summary.json
      raw_data: data/raw_data

  - id: classes
    kind: select
    inputs: results
    params:
      group_by: machine_type
      rules:
        - {name: high_quality, where: ["score >= 0.95", "status == PASS"], max: 800, set: {quality_score: 1}}
        - {name: natural_failure, where: ["score <= 0.1", "status == FAIL"], max: 300, set: {quality_score: 0}}

  - id: synthetic
    kind: degrade
    inputs: classes
    params:
      count: 300
      sources: ["class == high_quality"]
      group_by: machine_type
      set: {quality_score: 0, status: SYNTHETIC, class: synthetic}

  - id: split
    kind: split
    inputs: synthetic
    params:
      ratios: {train: 0.7, valid: 0.15, test: 0.15}
      missing_patient: own_group
      group_attribute: clip

  - id: dataset
    kind: echo_export
    inputs: split
)"},
      {"hemorrhage", R"(# A head-CT hemorrhage dataset as the hemorrhage v4 workflow builds it
# (configs/hemorrhage_v4.yaml in medpipe's source is the full example):
# a negatives pool downloaded from a model-feedback CSV, a previous dataset
# merged with a Roboflow export into 6 classes, split by patient, balanced
# to 50% negatives per split, training images augmented, checked, exported
# as 6-class and 4-class sets.
name: hemorrhage
workdir: ${MEDPIPE_WORKDIR:-work}
seed: 42
stages:
  # The negatives pool: DICOMs listed in the feedback CSV (s3://, https://,
  # file:// or DICOMweb), false positives before true negatives, windowed.
  # S3 credentials come from the environment or ~/.aws, never from here.
  - id: negatives
    kind: download
    params:
      csv: data/feedback.csv
      priority: [FP, TN]
      max_images: 4000
      id_columns: [sop_uid]
      window: brain
      filter_slice_thickness: ["5.0", "5.5"]
      pseudonymize_salt: change-me
      source: no_hem

  # The previous dataset version, patient ids in its file names.
  - id: previous
    kind: annotate
    params:
      images: data/previous/images
      annotations: data/previous/boxes.coco.json
      patient_pattern: '^(P\d+)_'
      source: previous

  # Previous + a Roboflow export, categories mapped by name.
  - id: merged
    kind: merge
    inputs: [previous]
    params:
      input_prefixes: {previous: v_}
      sources:
        - {path: data/roboflow, prefix: roboflow_, source: roboflow}
      categories: [EDH, HC, IPH, IVH, SAH, SDH]
      category_map:
        epidural: EDH
        hemorrhagic_contusion: HC
        intraparenchymal: IPH
        intraventricular: IVH
        subarachnoid: SAH
        subdural: SDH

  - id: split
    kind: split
    inputs: [merged]
    params:
      ratios: {train: 0.8, valid: 0.15, test: 0.05}

  # Fill every split to 50% negatives from the pool, FP before TN.
  - id: balanced
    kind: balance
    inputs: [split, negatives]
    params:
      target_negative_fraction: 0.5
      priority: [FP, TN]
      pool_prefix: no_hem_

  - id: augmented
    kind: augment
    inputs: [balanced]
    params:
      copies: 3
      splits: [train]

  - id: checked
    kind: validate
    inputs: [augmented]

  - id: analysis
    kind: analyze
    inputs: [checked]

  - id: 6class_coco
    kind: export
    inputs: [checked]

  - id: four_class
    kind: filter
    inputs: [checked]
    params:
      categories: [IPH, IVH, SAH, SDH]

  - id: 4class_coco
    kind: export
    inputs: [four_class]
)"},
  };
  return templates;
}

}  // namespace

std::vector<std::string> TemplateNames() {
  std::vector<std::string> out;
  for (const auto& [name, text] : Templates()) out.push_back(name);
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> StarterFiles(const std::string& name) {
  const std::string empty_coco = "{\"images\": [], \"annotations\": [], \"categories\": []}\n";
  using Files = std::vector<std::pair<std::string, std::string>>;
  if (name == "minimal") return Files{{"data/images/", ""}, {"data/boxes.coco.json", empty_coco}};
  if (name == "ctprep") {
    return Files{{"data/volumes/", ""},
                 {"data/metadata.csv", "VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing\n"},
                 {"data/labels.csv", "VolumeName\n"}};
  }
  // classify needs a model file to validate and images to run on: starter
  // radiographs and an untrained starter network (the template says so).
  if (name == "cxr") return StarterCxrFiles();
  if (name == "echo") return Files{{"data/summary.json", "[]\n"}, {"data/raw_data/", ""}};
  if (name == "hemorrhage") {
    return Files{{"data/feedback.csv", "image_url,label,sop_uid\n"},
                 {"data/previous/images/", ""},
                 {"data/previous/boxes.coco.json", empty_coco},
                 {"data/roboflow/", ""}};
  }
  return Files{};
}

std::string PipelineTemplate(const std::string& name) {
  auto it = Templates().find(name);
  return it == Templates().end() ? "" : it->second;
}

}  // namespace medpipe
