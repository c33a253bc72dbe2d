// Per-trial claims with leases: how many independent workers (Slurm array tasks, several MPI
// jobs, a laptop and a cluster) share one sweep directory, possibly on a network filesystem,
// without a directory-wide lock (docs/sweeps.md, "Concurrent workers").
//
// A worker claims trial <id> by creating claims/<id>.<g> with O_CREAT | O_EXCL (atomic on local
// filesystems and NFSv3+): exactly one creator wins generation g. The file holds the holder's
// identity (worker id, host, pid, Slurm job / array task / restart count) as JSON. The current
// claim of a trial is its highest generation; generations 1..g stay until released, so probing
// 1, 2, ... until a missing one finds it with a stat or two.
//   - The holder renews its lease by touching its claim file (heartbeat, every lease / 4); it
//     lost the claim if generation g + 1 appeared (it was taken over).
//   - A claim whose file was not touched for `lease_seconds` (by the file's mtime against this
//     host's clock: nodes' clocks are assumed NTP-synchronized to well under the lease) is stale:
//     another worker takes it over by creating generation g + 1 (again exclusive). A claim held
//     by a process of this host that no longer exists is stale at once.
//   - Releasing a finished trial removes generations g, g-1, ..., 1 (highest first). A prober
//     racing the removal may see a gap and claim anew, which is harmless because the trial's file
//     is already in place (see below). An unfinished trial (SIGTERM, time limit) is instead
//     *abandoned*: its file stays and its mtime is set to the epoch, so it is stale at once and
//     the next worker takes it over as generation g + 1, with no gap a racing prober could use.
// Correctness does not rest on claims alone: a worker checks that the trial is not done *after*
// claiming it, and a trial's file is renamed into place *before* its claim is released; so even a
// prober that races a release finds the file and skips the trial.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq::store {

/// Who is working: recorded in claims, ledger records and trial manifests.
struct WorkerIdentity {
  std::string id;  ///< unique per process, e.g. "slurm-1234_3-r1-vm-4711" or "vm-4711-ab12"
  std::string host;
  int pid = 0;
  std::string job_id, array_job_id, array_task_id;  ///< Slurm (empty outside Slurm)
  int restart_count = 0;                            ///< SLURM_RESTART_COUNT
  /// This process, from its host, pid and Slurm environment.
  static WorkerIdentity current(const std::string& kind);
  nlohmann::json to_json() const;
};

struct ClaimInfo {
  std::string trial;
  int generation = 0;
  nlohmann::json holder;   ///< WorkerIdentity::to_json of the holder
  double age_seconds = 0;  ///< since the last heartbeat
  bool live = false;       ///< age < lease
  bool abandoned = false;  ///< given up by its holder (abandon(): mtime set to 1970)
};

class ClaimStore {
 public:
  /// Seconds since the epoch. The default is the host's real-time clock; tests inject their own
  /// (claims then carry that clock's time as mtime, set explicitly when created and renewed).
  using Clock = std::function<double()>;
  ClaimStore(std::string dir, WorkerIdentity me, double lease_seconds, Clock clock = {});

  /// Tries to claim trial `id` (free, or held by a stale claim). True if this worker holds it now.
  bool try_claim(const std::string& id);
  /// Renews every held lease; returns the trials whose claims were taken over since (lost).
  std::vector<std::string> heartbeat();
  /// Releases the held claim of a trial whose file is in place, or whose outcome (failure) is in
  /// the ledger (no-op if not held).
  void release(const std::string& id);
  /// Hands back an unfinished trial: the claim becomes stale at once (no-op if not held).
  void abandon(const std::string& id);
  /// Abandons every held claim.
  void abandon_all();
  /// Trials this worker holds.
  std::vector<std::string> held() const;
  /// Every current claim in the directory (for `mpq status`).
  std::vector<ClaimInfo> list() const;
  /// The current claim of one trial (generation 0 if unclaimed).
  ClaimInfo current(const std::string& id) const;
  double lease_seconds() const { return lease_; }
  const WorkerIdentity& me() const { return me_; }

 private:
  std::string path(const std::string& id, int generation) const;
  double now() const;
  /// Sets a claim file's mtime to now (the kernel's, or clock_'s); false if it is gone.
  bool touch(const std::string& path) const;
  /// Drops `id` from the held claims; returns its generation (0 if not held).
  int forget(const std::string& id);
  std::string dir_;
  WorkerIdentity me_;
  double lease_;
  Clock clock_;  ///< empty: the real clock (mtimes set by the kernel)
  mutable std::mutex mu_;
  std::map<std::string, int> held_;  // trial -> generation
};

}  // namespace mpq::store
