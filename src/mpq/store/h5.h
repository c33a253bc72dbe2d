// Thin RAII layer over the HDF5 C API. All failures throw InputError naming the file and the
// object. HDF5's own header stays in h5.cpp: object ids are h5::Id (HDF5's Id, a 64-bit
// integer since HDF5 1.10; h5.cpp checks that the types agree), so includers of this header (the
// caches in ptq/, aggregate's trials.h5) do not see hdf5.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq::store::h5 {

using Id = int64_t;  ///< Id
using Status = int;  ///< Status

/// Turns off HDF5's automatic error-stack printing (once per process): errors are reported by
/// mpq as one line instead.
void silence_errors();

class Handle {
 public:
  Handle() = default;
  Handle(Id id, Status (*closer)(Id)) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Id id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }

 private:
  Id id_ = -1;
  Status (*closer_)(Id) = nullptr;
};

/// A file opened for writing (truncating) or reading; `path` is used in error messages.
class File {
 public:
  static File create(const std::string& path);
  static File open_read(const std::string& path);
  Id id() const { return h_.id(); }
  const std::string& path() const { return path_; }
  void flush();
  void close() { h_.reset(); }

 private:
  Handle h_;
  std::string path_;
};

Handle create_group(const File& f, Id parent, const std::string& name);
Handle open_group(const File& f, Id parent, const std::string& name);
Handle open_dataset(const File& f, Id parent, const std::string& name);
bool exists(Id parent, const std::string& name);

// Attributes: scalars, strings, and JSON scalars (number -> int64/double, bool -> int8,
// string -> UTF-8 string). Nested JSON values are stored as their JSON text.
void write_attr(const File& f, Id obj, const std::string& name, const nlohmann::json& value);
void write_attrs(const File& f, Id obj, const nlohmann::json& object);
/// Reads every attribute of obj into a JSON object (int -> integer, float -> number, string).
nlohmann::json read_attrs(const File& f, Id obj);
bool has_attr(Id obj, const std::string& name);
std::string read_string_attr(const File& f, Id obj, const std::string& name);

// Datasets of one element type with an explicit shape (row-major).
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const int8_t* data);
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const uint8_t* data);
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const int32_t* data);
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const int64_t* data);
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const float* data);
void write_dataset(const File& f, Id parent, const std::string& name,
                   const std::vector<int64_t>& shape, const double* data);
/// A scalar variable-length UTF-8 string dataset (e.g. the config JSON text).
void write_string_dataset(const File& f, Id parent, const std::string& name,
                          const std::string& text);
/// A 1-D dataset of variable-length UTF-8 strings (h5py: ds.asstr()[()]).
void write_string_list_dataset(const File& f, Id parent, const std::string& name,
                               const std::vector<std::string>& values);
std::string read_string_dataset(const File& f, Id parent, const std::string& name);

/// A uint8 dataset of `shape`, contiguous (uncompressed, unchunked) and allocated at creation,
/// written row block by row block with write_u8_rows (rows = the first dimension).
Handle create_u8_dataset(const File& f, Id parent, const std::string& name,
                         const std::vector<int64_t>& shape);
void write_u8_rows(const File& f, const Handle& dataset, const std::vector<int64_t>& shape,
                   int64_t first, int64_t count, const uint8_t* data);
/// Byte offset of a contiguous dataset's raw data in the file (-1 if none is allocated): such
/// data can be read directly with pread(2), from any thread, without the HDF5 library.
int64_t contiguous_offset(const File& f, Id parent, const std::string& name);

/// Shape of a dataset.
std::vector<int64_t> dataset_shape(const File& f, Id parent, const std::string& name);
/// Reads a whole dataset converted to T (int8/uint8/int32/int64/float/double).
template <typename T>
std::vector<T> read_dataset(const File& f, Id parent, const std::string& name,
                            std::vector<int64_t>* shape = nullptr);

/// Names of the links (children) of a group, in name order.
std::vector<std::string> children(const File& f, Id group);

}  // namespace mpq::store::h5
