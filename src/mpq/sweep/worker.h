// One independent sweep worker without MPI (`mpq sweep work`; Slurm array tasks): prepares the
// directory if nobody has (claiming.h), then claims and runs trials one at a time until none is
// left to claim, writing its own ledger (docs/sweeps.md, "Concurrent workers").
//
// Time limits: on SIGUSR1 (Slurm's --signal=B:USR1@<grace>) the worker stops claiming. If the
// trial in progress can finish within the grace time left (estimated from the median trial time
// in the ledgers), it finishes; otherwise its claim is released at once. Either way the worker
// then exits with kExitStopped so the batch script requeues the job. SIGTERM (scancel,
// preemption) releases every claim and exits with 143 at once (claiming.h, Heartbeat).
#pragma once

#include <string>

#include "mpq/sweep/claiming.h"

namespace mpq::sweep {

/// Exit code of a worker or sweep stopped early by SIGUSR1: "requeue me".
constexpr int kExitStopped = 3;

struct WorkerOptions {
  SweepOptions sweep;
  double stop_grace = 0;  ///< seconds between SIGUSR1 and the time limit (0: always finish)
  int max_trials = 0;     ///< stop after this many trials (0 = no limit)
};

struct WorkerResult {
  std::string worker;
  int ran = 0, succeeded = 0, failed = 0;
  int already_done = 0, left_to_others = 0;
  bool stopped = false;
  double seconds = 0;
  double store_seconds = 0;  ///< time in claims, ledger and scanning (not in trials)
};

WorkerResult run_worker(const SweepSpec& spec, const WorkerOptions& options);

}  // namespace mpq::sweep
