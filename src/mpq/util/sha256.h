// SHA-256 digests (OpenSSL EVP) used for trial ids and file fingerprints. Never std::hash:
// its values differ between runs, compilers and machines.
#pragma once

#include <string>

namespace mpq {

/// Lower-case hex SHA-256 of a byte string.
std::string sha256_hex(const std::string& bytes);

/// Incremental hasher for data that arrives in pieces (several files, streamed buffers).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(const std::string& s) { update(s.data(), s.size()); }
  /// Adds a whole file's contents. Throws InputError naming the file if it cannot be read.
  void update_file(const std::string& path);
  /// Finishes and returns the lower-case hex digest; the object cannot be updated afterwards.
  std::string hex();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL stays out of this header.
};

/// Lower-case hex SHA-256 of a file's contents. Throws InputError if unreadable.
std::string sha256_file(const std::string& path);

}  // namespace mpq
