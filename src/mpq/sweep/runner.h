// Running a sweep on MPI ranks (docs/sweeps.md).
//
// Rank 0 prepares (claiming.h: sweep directory, default models, fingerprints, plan.json) and
// broadcasts the work: every planned trial not done and not given up, in expansion order.
//
// Trial-parallel mode: dynamic master/worker scheduling. Rank 0 runs the scheduler on a thread
// of its own (polling with MPI_Iprobe and a 2 ms sleep, so it does not occupy a core) and runs
// trials on its main thread like every other rank; each rank asks for the next trial when it
// finishes one and reports the result with the request. The scheduler claims each trial before
// handing it out (claims.h), so other MPI jobs and Slurm array workers may work on the same
// directory at the same time; rank 0 renews the leases and writes this job's ledger.
//
// Layer-parallel mode: trials run one after another, each on all ranks together (see
// run_trial in trial.h): layers are split across ranks for quantization and the evaluation set
// is sharded; the result equals the single-rank run.
//
// A trial that throws is recorded FAILED with its message and the sweep goes on. Killing any
// rank or the whole job loses at most the trials in flight: their files were never renamed into
// place, their claims expire, and a rerun redoes them. SIGUSR1 (a Slurm time limit near) stops
// the scheduler from handing out new trials: the ranks finish what they run and the sweep
// returns with `stopped` set (the CLI exits 3, which mpq's batch scripts turn into a requeue).
#pragma once

#include <string>
#include <vector>

#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/claiming.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/sweep/trial.h"

namespace mpq::sweep {

struct SweepResult {
  std::string dir;
  int planned = 0;
  int already_done = 0;  ///< skipped because a valid file existed
  int ran = 0;           ///< attempted in this run
  int succeeded = 0, failed = 0;
  store::SweepStatus final_status;
  double seconds = 0;        ///< wall time of the run (preparation included)
  double trial_seconds = 0;  ///< sum over trials of their own wall time (run_trial)
  double busy_seconds = 0;   ///< sum over trials of assignment-to-report time seen by workers
  bool stopped = false;      ///< SIGUSR1 stopped it before every claimable trial ran
  int left_to_others = 0;    ///< trials held by live claims of other workers when it ended
};

/// Resolves models and data and computes the trial ids of a parsed sweep (no MPI). Datasets
/// loaded for fingerprints stay in `ctx` (nullptr: a temporary context).
std::vector<store::PlannedTrial> plan_trials(const SweepSpec& spec, TrialContext* ctx = nullptr);

/// Runs the sweep; collective over MPI_COMM_WORLD (rank/size from MpiSession). Only rank 0's
/// result is complete. Throws ConfigError/InputError on every rank if preparation fails.
SweepResult run_sweep(const SweepSpec& spec, const SweepOptions& options, int rank, int size);

/// Thrown on ranks other than 0 when rank 0 reported an error: the CLI exits with `code`
/// without printing (rank 0 prints the message once).
struct SilentExit {
  int code;
};

}  // namespace mpq::sweep
