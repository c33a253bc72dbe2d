// What every kind of sweep worker shares (MPI rank 0's scheduler, `mpq sweep work` array
// workers): preparing the directory once, picking trials through claims, keeping leases alive and
// answering SIGTERM, recording events in the worker's own ledger (docs/sweeps.md).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mpq/store/claims.h"
#include "mpq/store/ledger.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/sweep/trial.h"

namespace mpq::sweep {

struct SweepOptions {
  bool force = false;  ///< reuse a results directory that holds a different sweep config
  /// Benchmarks of the store and scheduler only: instead of running a trial, sleep this long and
  /// write a minimal (real, valid) trial file. < 0 = off.
  double simulate_seconds = -1;
};

/// The simulated trial of SweepOptions::simulate_seconds: sleeps, then writes a minimal valid
/// trial file for `id` at config["output"].
void run_simulated_trial(const std::string& id, const nlohmann::json& config, double seconds);

/// Creates or checks the sweep directory, resolves every model reference (training default
/// models if needed), fingerprints models and data, writes plan.json. Safe to run concurrently
/// with itself and with workers (atomic writes); cheap when everything is cached.
std::vector<store::PlannedTrial> prepare_sweep(const SweepSpec& spec, const SweepOptions& options,
                                               store::SweepDir& dir, TrialContext& ctx);

/// The plan of a prepared directory; if there is none yet, prepares it under an exclusive
/// prepare.lock (other workers wait for the plan, taking over a lock older than the lease).
std::vector<store::PlannedTrial> plan_or_prepare(const SweepSpec& spec, const SweepOptions& options,
                                                 store::SweepDir& dir, TrialContext& ctx);

/// Hands out trials in plan order, starting at the fraction `start` of the plan and wrapping
/// around (workers that start at different places rarely contend for the same claims), through
/// claims: a trial is skipped when done (its file exists), given up (max_attempts failures in the
/// merged ledgers) or held by a live claim elsewhere; claimed trials are checked again for a
/// result (a worker may have finished it just before releasing). After one pass, trials skipped
/// because of live claims are retried once more (their holders may have died meanwhile); then
/// next() returns -1 and those trials are left to their holders.
class TrialPicker {
 public:
  TrialPicker(const store::SweepDir& dir, store::ClaimStore& claims,
              std::vector<store::PlannedTrial> plan, int max_attempts, double start = 0);
  /// Index into the plan of the next trial, claimed by this worker; -1 when none is claimable.
  int next();
  const store::PlannedTrial& trial(int i) const { return plan_[static_cast<size_t>(i)]; }
  int already_done() const { return already_done_; }
  int left_to_others() const { return left_to_others_; }
  /// Failed attempts so far (from the ledgers at construction plus this worker's reports).
  int attempts(const std::string& id) const;
  void count_failure(const std::string& id) { failures_[id]++; }

 private:
  bool done(const store::PlannedTrial& p);
  const store::SweepDir& dir_;
  store::ClaimStore& claims_;
  std::vector<store::PlannedTrial> plan_;
  int max_attempts_;
  std::map<std::string, int> failures_;
  std::vector<int> order_, deferred_;
  size_t pos_ = 0;
  bool second_pass_ = false;
  int already_done_ = 0, left_to_others_ = 0;
};

/// Renews the claims' leases every lease / 4 seconds on a thread of its own, and on SIGTERM /
/// SIGINT releases every claim, records "terminated" in the ledger and exits the process with
/// 143 (so a cancelled or preempted Slurm job hands its trials back at once). Optional `on_tick`
/// runs at every tick (e.g. the time-limit check of array workers).
class Heartbeat {
 public:
  Heartbeat(store::ClaimStore& claims, store::Ledger& ledger, std::function<void()> on_tick = {});
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  /// Trials whose claims were taken over since the last call.
  std::vector<std::string> lost();

 private:
  store::ClaimStore& claims_;
  store::Ledger& ledger_;
  std::function<void()> on_tick_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> lost_;
  std::thread thread_;
};

/// Seconds of the median successful trial in the merged ledgers (0 if none yet): the estimate
/// behind "can the current trial finish before the time limit".
double median_trial_seconds(const store::SweepDir& dir);

}  // namespace mpq::sweep
