// One way to write a file so that it appears complete or not at all, used by every file mpq
// writes (trial files, caches, models, datasets, reports, sweep metadata).
//
//   AtomicFile out(path);            // out.tmp() = "<path>.tmp.<host>.<pid>", nothing there yet
//   write_anything_to(out.tmp());    // HDF5, TorchScript save, ofstream, a whole directory ...
//   out.commit();                    // fsync, rename onto <path>, fsync of the parent directory
//
// rename(2) within one file system is atomic (POSIX), so readers see the old file or the new one,
// never a partial one; the fsync of the file before and of the directory after the rename make
// the new name and its contents survive a crash (a rename alone may reach the disk before the
// data). Any failure throws InputError naming `path` and what failed; an AtomicFile destroyed
// without commit (an exception on the way, a failed commit) removes its temporary, so an error
// leaves nothing behind. A writer killed by a signal leaves the temporary: its name says which
// host and process wrote it, so cleanup can tell a dead writer's leftover from a live writer's
// file (temp_writer_is_dead; SweepDir::clean_stale_temps).
//
// A temporary directory (tmp() created by the writer) is committed the same way, its files
// fsynced first; a directory at `path` is replaced (moved aside, the new one renamed in, the old
// removed: the only window where neither exists is between two renames).
#pragma once

#include <string>

namespace mpq {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  /// Where to write: "<path>.tmp.<host>.<pid>" (removed first if a leftover of this process).
  const std::string& tmp() const { return tmp_; }
  /// Makes the temporary the file at path() (see the header). Throws InputError on failure; the
  /// temporary is then removed.
  void commit();

 private:
  std::string path_, tmp_;
  bool committed_ = false;
};

/// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, const std::string& bytes);

/// fsync of a file or a directory (its entries); InputError naming `path` on failure.
void fsync_path(const std::string& path);

/// For a file name "<anything>.tmp.<host>.<pid>" written by AtomicFile: true if <host> is this
/// host and process <pid> no longer exists. False for other names, other hosts, live writers.
bool temp_writer_is_dead(const std::string& file_name);

}  // namespace mpq
