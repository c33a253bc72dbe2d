#include "mpq/store/h5.h"

#include <hdf5.h>

#include <cstring>
#include <mutex>
#include <type_traits>

#include "mpq/util/error.h"

// h5.h names HDF5's id and status types without including hdf5.h.
static_assert(std::is_same_v<hid_t, mpq::store::h5::Id>, "hid_t is not int64_t (HDF5 < 1.10?)");
static_assert(std::is_same_v<herr_t, mpq::store::h5::Status>, "herr_t is not int");

namespace mpq::store::h5 {
using nlohmann::json;

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

namespace {

[[noreturn]] void fail(const File& f, const std::string& what) {
  throw InputError(f.path() + ": HDF5 error: " + what);
}

Handle check(hid_t id, herr_t (*closer)(hid_t), const File& f, const std::string& what) {
  if (id < 0) fail(f, what);
  return Handle(id, closer);
}

void check_status(herr_t st, const File& f, const std::string& what) {
  if (st < 0) fail(f, what);
}

Handle utf8_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}

Handle simple_space(const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

template <typename T>
hid_t mem_type();
template <>
hid_t mem_type<int8_t>() {
  return H5T_NATIVE_INT8;
}
template <>
hid_t mem_type<uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
hid_t mem_type<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t mem_type<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t mem_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t mem_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

// File types: little-endian fixed-size, what h5py/numpy read without conversion.
template <typename T>
hid_t file_type();
template <>
hid_t file_type<int8_t>() {
  return H5T_STD_I8LE;
}
template <>
hid_t file_type<uint8_t>() {
  return H5T_STD_U8LE;
}
template <>
hid_t file_type<int32_t>() {
  return H5T_STD_I32LE;
}
template <>
hid_t file_type<int64_t>() {
  return H5T_STD_I64LE;
}
template <>
hid_t file_type<float>() {
  return H5T_IEEE_F32LE;
}
template <>
hid_t file_type<double>() {
  return H5T_IEEE_F64LE;
}

template <typename T>
void write_ds(const File& f, hid_t parent, const std::string& name,
              const std::vector<int64_t>& shape, const T* data) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  auto space = simple_space(shape);
  auto ds = check(H5Dcreate2(parent, name.c_str(), file_type<T>(), space.id(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  H5Dclose, f, "cannot create dataset " + name);
  if (n > 0)
    check_status(H5Dwrite(ds.id(), mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), f,
                 "cannot write dataset " + name);
}

}  // namespace

File File::create(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  f.h_ = check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, f,
               "cannot create file");
  return f;
}

File File::open_read(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw InputError(path + ": not a readable HDF5 file (missing, truncated or corrupt)");
  f.h_ = Handle(id, H5Fclose);
  return f;
}

void File::flush() {
  check_status(H5Fflush(h_.id(), H5F_SCOPE_GLOBAL), *this, "flush failed");
}

Handle create_group(const File& f, hid_t parent, const std::string& name) {
  return check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, f,
               "cannot create group " + name);
}

Handle open_dataset(const File& f, hid_t parent, const std::string& name) {
  return check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose, f,
               "cannot open dataset " + name);
}

Handle open_group(const File& f, hid_t parent, const std::string& name) {
  return check(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), H5Gclose, f, "missing group " + name);
}

bool exists(hid_t parent, const std::string& name) {
  return H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0;
}

bool has_attr(hid_t obj, const std::string& name) {
  return H5Aexists(obj, name.c_str()) > 0;
}

void write_attr(const File& f, hid_t obj, const std::string& name, const json& value) {
  auto scalar = Handle(H5Screate(H5S_SCALAR), H5Sclose);
  auto put = [&](hid_t ftype, hid_t mtype, const void* buf) {
    auto a = check(H5Acreate2(obj, name.c_str(), ftype, scalar.id(), H5P_DEFAULT, H5P_DEFAULT),
                   H5Aclose, f, "cannot create attribute " + name);
    check_status(H5Awrite(a.id(), mtype, buf), f, "cannot write attribute " + name);
  };
  if (value.is_boolean()) {
    int8_t v = value.get<bool>() ? 1 : 0;
    put(H5T_STD_I8LE, H5T_NATIVE_INT8, &v);
  } else if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    put(H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
  } else if (value.is_number()) {
    double v = value.get<double>();
    put(H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
  } else {
    std::string s = value.is_string() ? value.get<std::string>() : value.dump();
    auto t = utf8_string_type();
    const char* p = s.c_str();
    put(t.id(), t.id(), &p);
  }
}

void write_attrs(const File& f, hid_t obj, const json& object) {
  for (const auto& [k, v] : object.items()) write_attr(f, obj, k, v);
}

namespace {
json read_one_attr(const File& f, hid_t attr, const std::string& name) {
  auto type = Handle(H5Aget_type(attr), H5Tclose);
  H5T_class_t cls = H5Tget_class(type.id());
  if (cls == H5T_INTEGER) {
    int64_t v = 0;
    check_status(H5Aread(attr, H5T_NATIVE_INT64, &v), f, "cannot read attribute " + name);
    return v;
  }
  if (cls == H5T_FLOAT) {
    double v = 0;
    check_status(H5Aread(attr, H5T_NATIVE_DOUBLE, &v), f, "cannot read attribute " + name);
    return v;
  }
  if (cls == H5T_STRING) {
    if (H5Tis_variable_str(type.id()) > 0) {
      auto t = utf8_string_type();
      char* p = nullptr;
      check_status(H5Aread(attr, t.id(), &p), f, "cannot read attribute " + name);
      std::string s = p ? p : "";
      auto space = Handle(H5Aget_space(attr), H5Sclose);
      H5Dvlen_reclaim(t.id(), space.id(), H5P_DEFAULT, &p);
      return s;
    }
    size_t n = H5Tget_size(type.id());
    std::string s(n, '\0');
    check_status(H5Aread(attr, type.id(), s.data()), f, "cannot read attribute " + name);
    s.resize(std::strlen(s.c_str()));
    return s;
  }
  return nullptr;
}
}  // namespace

json read_attrs(const File& f, hid_t obj) {
  // Names by H5Aiterate2 (one signature from HDF5 1.8 to 1.14; H5Oget_info changed arity in 1.12).
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  };
  hsize_t at = 0;
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &at, collect, &names) < 0)
    fail(f, "cannot list attributes");
  json out = json::object();
  for (const auto& name : names) {
    auto a = check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, f,
                   "cannot open attribute " + name);
    out[name] = read_one_attr(f, a.id(), name);
  }
  return out;
}

std::string read_string_attr(const File& f, hid_t obj, const std::string& name) {
  if (!has_attr(obj, name)) fail(f, "missing attribute " + name);
  auto a =
      check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, f, "cannot open attribute " + name);
  json v = read_one_attr(f, a.id(), name);
  if (!v.is_string()) fail(f, "attribute " + name + " is not a string");
  return v.get<std::string>();
}

void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const int8_t* d) {
  write_ds(f, p, n, s, d);
}
void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const int32_t* d) {
  write_ds(f, p, n, s, d);
}
void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const int64_t* d) {
  write_ds(f, p, n, s, d);
}
void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const float* d) {
  write_ds(f, p, n, s, d);
}
void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const double* d) {
  write_ds(f, p, n, s, d);
}

void write_dataset(const File& f, hid_t p, const std::string& n, const std::vector<int64_t>& s,
                   const uint8_t* d) {
  write_ds(f, p, n, s, d);
}

Handle create_u8_dataset(const File& f, hid_t parent, const std::string& name,
                         const std::vector<int64_t>& shape) {
  auto space = simple_space(shape);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_layout(dcpl.id(), H5D_CONTIGUOUS);
  H5Pset_alloc_time(dcpl.id(), H5D_ALLOC_TIME_EARLY);
  return check(H5Dcreate2(parent, name.c_str(), H5T_STD_U8LE, space.id(), H5P_DEFAULT, dcpl.id(),
                          H5P_DEFAULT),
               H5Dclose, f, "cannot create dataset " + name);
}

void write_u8_rows(const File& f, const Handle& ds, const std::vector<int64_t>& shape,
                   int64_t first, int64_t count, const uint8_t* data) {
  if (count <= 0) return;
  auto file_space = simple_space(shape);
  std::vector<hsize_t> start(shape.size(), 0), cnt(shape.begin(), shape.end());
  start[0] = static_cast<hsize_t>(first);
  cnt[0] = static_cast<hsize_t>(count);
  check_status(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr,
                                   cnt.data(), nullptr),
               f, "cannot select rows");
  std::vector<int64_t> mshape(cnt.begin(), cnt.end());
  auto mem_space = simple_space(mshape);
  check_status(
      H5Dwrite(ds.id(), H5T_NATIVE_UINT8, mem_space.id(), file_space.id(), H5P_DEFAULT, data), f,
      "cannot write rows");
}

int64_t contiguous_offset(const File& f, hid_t parent, const std::string& name) {
  auto ds = check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose, f, "no dataset " + name);
  haddr_t off = H5Dget_offset(ds.id());
  return off == HADDR_UNDEF ? -1 : static_cast<int64_t>(off);
}

void write_string_dataset(const File& f, hid_t parent, const std::string& name,
                          const std::string& text) {
  auto t = utf8_string_type();
  auto scalar = Handle(H5Screate(H5S_SCALAR), H5Sclose);
  auto ds = check(
      H5Dcreate2(parent, name.c_str(), t.id(), scalar.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose, f, "cannot create dataset " + name);
  const char* p = text.c_str();
  check_status(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), f,
               "cannot write dataset " + name);
}

void write_string_list_dataset(const File& f, hid_t parent, const std::string& name,
                               const std::vector<std::string>& values) {
  auto t = utf8_string_type();
  auto space = simple_space({static_cast<int64_t>(values.size())});
  auto ds = check(
      H5Dcreate2(parent, name.c_str(), t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose, f, "cannot create dataset " + name);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!ptrs.empty())
    check_status(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), f,
                 "cannot write dataset " + name);
}

std::string read_string_dataset(const File& f, hid_t parent, const std::string& name) {
  if (!exists(parent, name)) fail(f, "missing dataset " + name);
  auto ds = check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose, f,
                  "cannot open dataset " + name);
  auto t = utf8_string_type();
  char* p = nullptr;
  check_status(H5Dread(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), f,
               "cannot read dataset " + name);
  std::string s = p ? p : "";
  auto space = Handle(H5Dget_space(ds.id()), H5Sclose);
  H5Dvlen_reclaim(t.id(), space.id(), H5P_DEFAULT, &p);
  return s;
}

std::vector<int64_t> dataset_shape(const File& f, hid_t parent, const std::string& name) {
  if (!exists(parent, name)) fail(f, "missing dataset " + name);
  auto ds = check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose, f,
                  "cannot open dataset " + name);
  auto space = Handle(H5Dget_space(ds.id()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) fail(f, "bad dataspace of " + name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

template <typename T>
std::vector<T> read_dataset(const File& f, hid_t parent, const std::string& name,
                            std::vector<int64_t>* shape) {
  auto s = dataset_shape(f, parent, name);
  int64_t n = 1;
  for (auto v : s) n *= v;
  std::vector<T> out(static_cast<size_t>(n));
  auto ds = check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose, f,
                  "cannot open dataset " + name);
  if (n > 0)
    check_status(H5Dread(ds.id(), mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), f,
                 "cannot read dataset " + name);
  if (shape) *shape = s;
  return out;
}
template std::vector<int8_t> read_dataset<int8_t>(const File&, hid_t, const std::string&,
                                                  std::vector<int64_t>*);
template std::vector<uint8_t> read_dataset<uint8_t>(const File&, hid_t, const std::string&,
                                                    std::vector<int64_t>*);
template std::vector<int32_t> read_dataset<int32_t>(const File&, hid_t, const std::string&,
                                                    std::vector<int64_t>*);
template std::vector<int64_t> read_dataset<int64_t>(const File&, hid_t, const std::string&,
                                                    std::vector<int64_t>*);
template std::vector<float> read_dataset<float>(const File&, hid_t, const std::string&,
                                                std::vector<int64_t>*);
template std::vector<double> read_dataset<double>(const File&, hid_t, const std::string&,
                                                  std::vector<int64_t>*);

std::vector<std::string> children(const File& f, hid_t group) {
  H5G_info_t gi;
  if (H5Gget_info(group, &gi) < 0) fail(f, "cannot list group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < gi.nlinks; ++i) {
    ssize_t len =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                       static_cast<size_t>(len) + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  return names;
}

}  // namespace mpq::store::h5
