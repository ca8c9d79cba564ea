#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running the
# medpipe demo needs. Idempotent: packages already present are left alone and
# the apt index is only refreshed when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libtbb-dev libdcmtk-dev dcmtk libpng-dev libjpeg-dev zlib1g-dev
  rapidjson-dev libcurl4-openssl-dev libyaml-cpp-dev libfmt-dev
  libboost-filesystem-dev libopencv-dev libcpp-httplib-dev
  libssl-dev libgtest-dev libgmock-dev libisal-dev libdeflate-dev
  python3 python3-pydicom python3-numpy python3-pil python3-botocore python3-opencv
  curl time orthanc orthanc-dicomweb
  libnifti2-dev python3-nibabel python3-scipy python3-sklearn
  libtorch-dev libopenblas0-pthread python3-torch python3-onnx
  chromium chromium-driver python3-selenium
  slurm-wlm slurm-client munge
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
