// An exclusive advisory lock on a lock file (flock), held for the object's lifetime: processes
// that build the same cache entry (MPI ranks, parallel tests, array workers) wait for each other.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "mpq/util/error.h"

namespace mpq {

class FileLock {
 public:
  /// Creates `path` if needed and blocks until the lock is held. InputError if it cannot.
  explicit FileLock(const std::string& path)
      : fd_(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
    if (fd_ < 0)
      throw InputError(path + ": cannot create lock file (" + std::strerror(errno) + ")");
    ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace mpq
