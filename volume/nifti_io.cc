#include "volume/nifti_io.h"

#include <fmt/format.h>
#include <nifti1_io.h>
#include <unistd.h>
#include <znzlib.h>

#include <atomic>
#include <algorithm>
#include <cmath>
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

// Reads nim's voxel data into nim->data, counting the bytes: a file that ends
// before nvox * nbyper bytes is an error naming what is missing.
Status ReadVoxels(const fs::path& path, nifti_image* nim) {
  const size_t want = nifti_get_volsize(nim);
  const size_t slice = static_cast<size_t>(nim->nx) * std::max(1, nim->ny) * static_cast<size_t>(nim->nbyper);
  if (want == 0 || slice == 0) return Status::Invalid(path.string() + ": empty volume");
  znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
  if (znz_isnull(fp)) return Status::Invalid(path.string() + ": cannot open the voxel data");
  std::unique_ptr<void, void (*)(void*)> buf(std::malloc(want), std::free);
  size_t got = 0;
  if (!buf) {
    znzclose(fp);
    return Status::Invalid(fmt::format("{}: {} bytes of voxel data do not fit in memory", path.string(), want));
  }
  // fseek answers 0 on success, gzseek the new offset; both -1 on failure.
  if (znzseek(fp, static_cast<znz_off_t>(nim->iname_offset), SEEK_SET) >= 0) {
    // Read in pieces: gzread takes an unsigned int count.
    while (got < want) {
      size_t chunk = std::min<size_t>(want - got, size_t{1} << 26);
      size_t n = znzread(static_cast<char*>(buf.get()) + got, 1, chunk, fp);
      got += n;
      if (n < chunk) break;
    }
  }
  znzclose(fp);
  if (got < want) {
    const size_t slices = want / slice, whole = got / slice;
    return Status::Invalid(fmt::format(
        "{}: truncated: the voxel data ends after {} of {} bytes ({} bytes missing; {} of {} slices incomplete)",
        path.string(), got, want, want - got, slices - whole, slices));
  }
  if (nim->byteorder != nifti_short_order()) nifti_swap_Nbytes(nim->nvox, nim->swapsize, buf.get());
  nim->data = buf.release();  // freed by nifti_image_free
  return Status::OK();
}

// nibabel's Nifti1Header.get_best_affine, from the matrices nifticlib
// computed while reading the header (qto_xyz includes qfac and pixdim).
Affine BestAffine(const nifti_image& nim, std::string* source) {
  Affine a{};
  const mat44* m = nim.sform_code != 0 ? &nim.sto_xyz : nim.qform_code != 0 ? &nim.qto_xyz : nullptr;
  if (m) {
    *source = nim.sform_code != 0 ? "sform" : "qform";
    for (size_t r = 0; r < 3; ++r) {
      for (size_t c = 0; c < 4; ++c) a[r][c] = m->m[r][c];
    }
    return a;
  }
  // Analyze's convention (nibabel's get_base_affine): x reversed, the
  // centre of the volume at the origin.
  *source = "pixdim";
  const double d[3] = {-std::abs(nim.dx), std::abs(nim.dy), std::abs(nim.dz)};
  const int n[3] = {nim.nx, std::max(1, nim.ny), std::max(1, nim.nz)};
  for (size_t r = 0; r < 3; ++r) {
    double s = d[r] != 0 ? d[r] : (r == 0 ? -1 : 1);
    a[r][r] = s;
    a[r][3] = -s * (n[r] - 1) / 2.0;
  }
  return a;
}

}  // namespace

Result<NiftiVolume> ReadNifti(const fs::path& path) {
  QuietNifti();
  if (!StatPath(path).exists) return Status::NotFound(path.string() + ": no such file");
  NimPtr nim(nifti_image_read(path.c_str(), 0));  // the header; the voxels are read below
  if (!nim) return Status::Invalid(path.string() + ": not a readable NIfTI file (or its header is cut short)");
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
  MEDPIPE_RETURN_IF_ERROR(ReadVoxels(path, nim.get()));
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
  out.affine = BestAffine(*nim, &out.affine_source);
  return out;
}

Result<std::string> NiftiBytes(const Volume& v, bool gzip, Canonical orientation) {
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
  // LPS is RAS turned 180 degrees about z: the unit quaternion (0, 0, 0, 1).
  nim->quatern_b = nim->quatern_c = 0;
  nim->quatern_d = orientation == Canonical::kLPS ? 1 : 0;
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
