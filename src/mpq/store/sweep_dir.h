// The on-disk layout of one sweep (docs/sweeps.md):
//
//   <results_dir>/<name>/
//     sweep.json        the sweep config as given, plus its fingerprint (refuses a different
//                       config under the same name unless forced)
//     plan.json         the expanded trials: id, settings, resolved config (written by rank 0)
//     ledger.jsonl      append-only event log (ledger.h)
//     trials/<id>.h5    one HDF5 file per completed trial (trial_file.h)
//     cache/            calibration statistics shared by all trials
//     aggregate/        tables written by `mpq aggregate`
//
// A trial counts as done only if trials/<id>.h5 exists and validates; the ledger adds failure
// counts and messages.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/store/ledger.h"

namespace mpq::store {

enum class TrialState { kDone, kFailed, kGaveUp, kPending };
const char* trial_state_name(TrialState s);

struct PlannedTrial {
  std::string id;
  nlohmann::json settings;  ///< axis values, flat
  nlohmann::json config;    ///< resolved trial config
};

struct SweepStatus {
  std::vector<std::pair<PlannedTrial, TrialState>> trials;
  std::map<std::string, TrialHistory> history;
  int done = 0, failed = 0, gave_up = 0, pending = 0;
  int invalid_files = 0;   ///< trial files present but not valid (truncated/corrupt)
  int ledger_skipped = 0;  ///< unreadable ledger lines
};

/// Exclusive hold on a sweep directory for one run (flock on <dir>/.lock); released on destruction.
class SweepLock {
 public:
  explicit SweepLock(int fd) : fd_(fd) {}
  ~SweepLock();
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  int fd_;
};

class SweepDir {
 public:
  explicit SweepDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string trials_dir() const { return dir_ + "/trials"; }
  std::string trial_path(const std::string& id) const { return trials_dir() + "/" + id + ".h5"; }
  std::string ledger_path() const { return dir_ + "/ledger.jsonl"; }
  std::string plan_path() const { return dir_ + "/plan.json"; }
  std::string cache_dir() const { return dir_ + "/cache"; }
  std::string aggregate_dir() const { return dir_ + "/aggregate"; }

  /// Creates the layout and records the sweep config. If the directory already holds a sweep
  /// with a different fingerprint, throws ConfigError unless `force`.
  void init(const nlohmann::json& sweep_document, const std::string& fingerprint, bool force) const;

  /// Takes the directory for this run: throws ConfigError if another run holds it. Then removes
  /// temporary files left in trials/ by runs that were killed while writing.
  std::unique_ptr<SweepLock> lock() const;

  void write_plan(const std::vector<PlannedTrial>& plan) const;
  /// Throws InputError if there is no readable plan (not a sweep directory).
  std::vector<PlannedTrial> read_plan() const;

  /// run.max_attempts of the recorded sweep config (2 when unset). Throws InputError if
  /// sweep.json exists but is unreadable.
  int max_attempts() const;

  /// State of every planned trial; trials whose file is present but invalid are pending (and
  /// counted in invalid_files).
  SweepStatus status(int max_attempts) const;

 private:
  std::string dir_;
};

/// Writes text to path atomically (temporary file, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace mpq::store
