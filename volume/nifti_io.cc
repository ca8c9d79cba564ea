#include "volume/nifti_io.h"

#include <fmt/format.h>
#include <nifti1_io.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>

namespace medpipe {

namespace {

void QuietNifti() {
  static const bool once = [] {
    nifti_set_debug_level(0);  // errors come back as Status values naming the file
    return true;
  }();
  (void)once;
}

struct NimDeleter {
  void operator()(nifti_image* nim) const { nifti_image_free(nim); }
};
using NimPtr = std::unique_ptr<nifti_image, NimDeleter>;

template <typename T>
void CopyAs(const void* src, size_t n, float* dst) {
  const T* p = static_cast<const T*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(p[i]);
}

}  // namespace

Result<NiftiVolume> ReadNifti(const fs::path& path) {
  QuietNifti();
  if (!StatPath(path).exists) return Status::NotFound(path.string() + ": no such file");
  NimPtr nim(nifti_image_read(path.c_str(), 1));
  if (!nim || !nim->data) return Status::Invalid(path.string() + ": not a readable NIfTI file (or truncated)");
  if (nim->ndim < 2 || nim->ndim > 4 || (nim->ndim == 4 && nim->nt > 1)) {
    return Status::Invalid(fmt::format("{}: a {}-D image with dims {}x{}x{}x{}; expected one 3-D volume",
                                       path.string(), nim->ndim, nim->nx, nim->ny, nim->nz, nim->nt));
  }
  NiftiVolume out;
  Volume& v = out.volume;
  v.nx = nim->nx;
  v.ny = nim->ny;
  v.nz = nim->ndim >= 3 ? nim->nz : 1;
  if (v.nx <= 0 || v.ny <= 0 || v.nz <= 0) return Status::Invalid(path.string() + ": empty volume");
  for (int a = 0; a < 3; ++a) {
    double s = std::abs(static_cast<double>(nim->pixdim[a + 1]));
    v.spacing[static_cast<size_t>(a)] = s > 0 ? s : 1.0;
  }
  v.data.resize(v.size());
  const size_t n = v.size();
  switch (nim->datatype) {
    case DT_UINT8: CopyAs<uint8_t>(nim->data, n, v.data.data()); break;
    case DT_INT8: CopyAs<int8_t>(nim->data, n, v.data.data()); break;
    case DT_INT16: CopyAs<int16_t>(nim->data, n, v.data.data()); break;
    case DT_UINT16: CopyAs<uint16_t>(nim->data, n, v.data.data()); break;
    case DT_INT32: CopyAs<int32_t>(nim->data, n, v.data.data()); break;
    case DT_UINT32: CopyAs<uint32_t>(nim->data, n, v.data.data()); break;
    case DT_FLOAT32: CopyAs<float>(nim->data, n, v.data.data()); break;
    case DT_FLOAT64: CopyAs<double>(nim->data, n, v.data.data()); break;
    default:
      return Status::Invalid(fmt::format("{}: unsupported NIfTI datatype {}", path.string(),
                                         nifti_datatype_string(nim->datatype)));
  }
  out.datatype = nifti_datatype_string(nim->datatype);
  if (nim->scl_slope != 0 && std::isfinite(nim->scl_slope) && std::isfinite(nim->scl_inter)) {
    out.slope = nim->scl_slope;
    out.intercept = nim->scl_inter;
    out.has_scaling = true;
  }
  return out;
}

Result<std::string> NiftiBytes(const Volume& v, bool gzip) {
  QuietNifti();
  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec) /
                 fmt::format("medpipe-nifti-{}-{}{}", getpid(), counter.fetch_add(1), gzip ? ".nii.gz" : ".nii");
  if (ec) return Status::IOError("no temporary folder: " + ec.message());
  int dims[8] = {3, v.nx, v.ny, v.nz, 1, 1, 1, 1};
  NimPtr nim(nifti_make_new_nim(dims, DT_FLOAT32, 0));
  if (!nim) return Status::IOError("nifticlib could not allocate an image");
  nim->data = std::malloc(v.size() * sizeof(float));  // freed by nifti_image_free
  if (!nim->data) return Status::IOError("out of memory for a NIfTI image");
  std::memcpy(nim->data, v.data.data(), v.size() * sizeof(float));
  nim->dx = nim->pixdim[1] = static_cast<float>(v.spacing[0]);
  nim->dy = nim->pixdim[2] = static_cast<float>(v.spacing[1]);
  nim->dz = nim->pixdim[3] = static_cast<float>(v.spacing[2]);
  nim->scl_slope = 1;
  nim->scl_inter = 0;
  nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->quatern_b = nim->quatern_c = nim->quatern_d = 0;
  nim->qoffset_x = nim->qoffset_y = nim->qoffset_z = 0;
  nim->qfac = 1;
  nim->xyz_units = NIFTI_UNITS_MM;
  nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
  if (nifti_set_filenames(nim.get(), tmp.c_str(), 0, 1) != 0) return Status::IOError("nifticlib rejected " + tmp.string());
  nifti_image_write(nim.get());  // returns nothing: success is checked by reading the file back
  Result<std::string> bytes = ReadFile(tmp);
  fs::remove(tmp, ec);
  if (!bytes.ok() || bytes->size() < 352) return Status::IOError("nifticlib could not write " + tmp.string());
  return bytes;
}

}  // namespace medpipe
