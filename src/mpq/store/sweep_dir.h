// The on-disk layout of one sweep (docs/sweeps.md):
//
//   <results_dir>/<name>/
//     sweep.json        the sweep config as given, plus its fingerprint (refuses a different
//                       config under the same name unless forced)
//     plan.json         the expanded trials: id, settings, resolved config (prepare step)
//     ledgers/<worker>.jsonl   append-only event log of each worker process (ledger.h); readers
//                       merge them (and a pre-claims ledger.jsonl)
//     claims/<id>.<g>   who is running which trial (claims.h)
//     trials/<id>.h5    one HDF5 file per completed trial (trial_file.h)
//     cache/            calibration statistics shared by all trials
//     slurm/            batch scripts, job ids and logs of `mpq slurm submit`
//     aggregate/        tables written by `mpq aggregate`
//
// Any number of workers (MPI jobs, Slurm array tasks, plain processes) may work on one directory
// at once: no directory-wide lock, each writes only its own ledger, trials are claimed one by one.
// A trial counts as done only if trials/<id>.h5 exists and validates; the ledgers add failure
// counts and messages, the claims who is running what.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/store/claims.h"
#include "mpq/store/ledger.h"
#include "mpq/util/atomic_file.h"

namespace mpq::store {

enum class TrialState { kDone, kFailed, kGaveUp, kPending, kRunning };
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
  int running = 0;                ///< not done, claimed by a live worker
  std::vector<ClaimInfo> claims;  ///< every current claim (live or stale)
  int invalid_files = 0;          ///< trial files present but not valid (truncated/corrupt)
  int ledger_skipped = 0;         ///< unreadable ledger lines
};

class SweepDir {
 public:
  explicit SweepDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string trials_dir() const { return dir_ + "/trials"; }
  std::string trial_path(const std::string& id) const { return trials_dir() + "/" + id + ".h5"; }
  /// The single ledger of runs before per-worker ledgers (read, never written).
  std::string legacy_ledger_path() const { return dir_ + "/ledger.jsonl"; }
  std::string ledgers_dir() const { return dir_ + "/ledgers"; }
  std::string ledger_path(const std::string& worker) const {
    return ledgers_dir() + "/" + worker + ".jsonl";
  }
  std::string claims_dir() const { return dir_ + "/claims"; }
  std::string slurm_dir() const { return dir_ + "/slurm"; }
  std::string plan_path() const { return dir_ + "/plan.json"; }
  std::string sweep_record_path() const { return dir_ + "/sweep.json"; }
  std::string fp_check_path() const { return dir_ + "/fp_check.json"; }
  std::string cache_dir() const { return dir_ + "/cache"; }
  std::string aggregate_dir() const { return dir_ + "/aggregate"; }

  /// Creates the layout and records the sweep config. If the directory already holds a sweep
  /// with a different fingerprint, throws ConfigError unless `force`.
  void init(const nlohmann::json& sweep_document, const std::string& fingerprint, bool force) const;

  /// Removes temporary files left by workers that were killed while writing: in trials/, those
  /// of trials without a live claim (a writer always holds one); next to sweep.json, plan.json
  /// and fp_check.json, those whose writer was a process of this host that is gone, or that
  /// are over an hour old. Returns how many.
  int clean_stale_temps(const ClaimStore& claims) const;

  /// Validates every trial file of the plan and moves the invalid ones (truncated or corrupt by
  /// disk trouble: files are renamed into place only when complete) aside to
  /// "<id>.h5.invalid[.N]", so that the trial is redone. Workers then treat a file's existence
  /// as "done" (a stat, not an HDF5 open per worker and trial). Returns how many were moved.
  int set_aside_invalid_trials(const std::vector<PlannedTrial>& plan) const;

  /// Every ledger record of every worker (partial or corrupt lines skipped, counted).
  std::vector<nlohmann::json> read_ledgers(int* skipped = nullptr) const;

  void write_plan(const std::vector<PlannedTrial>& plan) const;
  /// Throws InputError if there is no readable plan (not a sweep directory).
  std::vector<PlannedTrial> read_plan() const;

  /// The sweep config as given, recorded in sweep.json ({} when there is no sweep.json). Throws
  /// InputError naming the file if it exists but is unreadable.
  nlohmann::json read_sweep_document() const;
  /// The FP checks of the preparation (fp_check.json, sweep/fp_check.h; [] when none ran).
  /// Throws InputError naming the file if it exists but is unreadable or not a JSON array.
  nlohmann::json read_fp_checks() const;

  /// run.max_attempts of the recorded sweep config (2 when unset). Throws InputError if
  /// sweep.json exists but is unreadable.
  int max_attempts() const;
  /// run.lease_seconds of the recorded sweep config (kDefaultLeaseSeconds when unset).
  double lease_seconds() const;
  static constexpr double kDefaultLeaseSeconds = 120.0;

  /// State of every planned trial; trials whose file is present but invalid are pending (and
  /// counted in invalid_files); not-done trials with a live claim are running.
  SweepStatus status(int max_attempts) const;

 private:
  std::string dir_;
};

/// Writes text to path atomically (util/atomic_file.h).
using ::mpq::write_file_atomic;

}  // namespace mpq::store
