#include "mpq/util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "mpq/util/error.h"
#include "mpq/util/provenance.h"

namespace mpq {
namespace fs = std::filesystem;

namespace {

void fsync_one(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open to sync (" + std::strerror(errno) + ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Directories on some file systems do not support fsync (EINVAL): nothing to sync then.
  if (rc != 0 && !(err == EINVAL && fs::is_directory(path)))
    throw InputError(path + ": fsync failed (" + std::strerror(err) + ")");
}

std::string parent_of(const std::string& path) {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

}  // namespace

void fsync_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(path, ec))
      if (e.is_regular_file() || e.is_directory()) fsync_one(e.path().string());
    if (ec) throw InputError(path + ": cannot list to sync (" + ec.message() + ")");
  }
  fsync_one(path);
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)),
      tmp_(path_ + ".tmp." + host_name() + "." + std::to_string(::getpid())) {
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void AtomicFile::commit() {
  std::error_code ec;
  if (!fs::exists(tmp_, ec)) throw InputError(path_ + ": nothing was written (" + tmp_ + ")");
  fsync_path(tmp_);
  if (fs::is_directory(path_, ec)) {
    // rename(2) does not replace a non-empty directory: move the old one aside first.
    const std::string old = path_ + ".old." + host_name() + "." + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(path_, old, ec);
    if (ec)
      throw InputError(path_ + ": cannot move the old directory aside (" + ec.message() + ")");
    fs::rename(tmp_, path_, ec);
    if (ec) {
      std::error_code back;
      fs::rename(old, path_, back);
      throw InputError(path_ + ": cannot rename " + tmp_ + " into place (" + ec.message() + ")");
    }
    fs::remove_all(old, ec);
  } else if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    throw InputError(path_ + ": cannot rename " + tmp_ + " into place (" + std::strerror(errno) +
                     ")");
  }
  committed_ = true;
  fsync_one(parent_of(path_));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile out(path);
  {
    std::ofstream o(out.tmp(), std::ios::binary | std::ios::trunc);
    if (!o) throw InputError(path + ": cannot write (" + std::strerror(errno) + ")");
    o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    o.flush();
    if (!o) throw InputError(path + ": write failed (disk full?)");
  }
  out.commit();
}

bool temp_writer_is_dead(const std::string& name) {
  const auto at = name.rfind(".tmp.");
  if (at == std::string::npos) return false;
  const std::string who = name.substr(at + 5);  // host.pid
  const auto dot = who.rfind('.');
  if (dot == std::string::npos || who.substr(0, dot) != host_name()) return false;
  char* end = nullptr;
  const long pid = std::strtol(who.c_str() + dot + 1, &end, 10);
  if (end == nullptr || *end != '\0' || pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace mpq
