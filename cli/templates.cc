#include "cli/templates.h"

#include <map>

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

std::vector<std::pair<std::string, std::string>> StarterFiles(const std::string& name) {
  const std::string empty_coco = "{\"images\": [], \"annotations\": [], \"categories\": []}\n";
  if (name == "minimal") return {{"data/images/", ""}, {"data/boxes.coco.json", empty_coco}};
  if (name == "ctprep") {
    return {{"data/volumes/", ""},
            {"data/metadata.csv", "VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing\n"},
            {"data/labels.csv", "VolumeName\n"}};
  }
  if (name == "echo") return {{"data/summary.json", "[]\n"}, {"data/raw_data/", ""}};
  if (name == "hemorrhage") {
    return {{"data/feedback.csv", "url,label,sop_uid\n"},
            {"data/previous/images/", ""},
            {"data/previous/boxes.coco.json", empty_coco},
            {"data/roboflow/", ""}};
  }
  return {};
}

std::string PipelineTemplate(const std::string& name) {
  auto it = Templates().find(name);
  return it == Templates().end() ? "" : it->second;
}

}  // namespace medpipe
