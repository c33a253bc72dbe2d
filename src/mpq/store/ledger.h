// The sweep ledger: an append-only JSON-lines file of trial events, one object per line:
//   {"time": "...Z", "event": "started"|"done"|"failed", "trial": "<id>", "rank": 1,
//    "attempt": 1, "seconds": 3.2, "message": "..."}      (+ "sweep" events at start/end)
// Each record is written with one write(2) on an O_APPEND descriptor and fsynced before the call
// returns, so a crash leaves at most one partial last line, which readers ignore. Only one
// process writes a given ledger: every worker has its own (sweep_dir.h merges them).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq::store {

class Ledger {
 public:
  /// Opens (creating if needed) `path` for appending. `common` fields (e.g. the worker's
  /// identity) are added to every record. Throws InputError if it cannot.
  explicit Ledger(const std::string& path, nlohmann::json common = nlohmann::json::object());
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  /// Appends one record (a "time" field is added) durably.
  void append(nlohmann::json record);

 private:
  std::string path_;
  nlohmann::json common_;
  int fd_ = -1;
};

/// What the ledger says about one trial.
struct TrialHistory {
  int started = 0;
  int done = 0;
  int failed = 0;
  std::string last_message;  ///< message of the last failure
};

/// Reads every complete line of a ledger (missing file = empty); partial or corrupt lines are
/// skipped and counted in *skipped.
std::vector<nlohmann::json> read_ledger(const std::string& path, int* skipped = nullptr);

/// Per-trial history folded from ledger records.
std::map<std::string, TrialHistory> fold_ledger(const std::vector<nlohmann::json>& records);

}  // namespace mpq::store
