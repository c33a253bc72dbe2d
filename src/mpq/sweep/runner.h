// Running a sweep on MPI ranks (docs/sweeps.md).
//
// Rank 0 prepares: creates/validates the sweep directory, resolves every model reference
// (training default models if needed) and fingerprints models and data, computes trial ids,
// writes plan.json, and decides the work: every planned trial that is not done (valid file),
// not given up (max_attempts failures), in expansion order. The work list is broadcast.
//
// Trial-parallel mode: dynamic master/worker scheduling. Rank 0 runs the scheduler on a thread
// of its own (polling with MPI_Iprobe and a 2 ms sleep, so it does not occupy a core) and runs
// trials on its main thread like every other rank; each rank asks for the next trial when it
// finishes one and reports the result with the request. Rank 0 alone appends to the ledger.
//
// Layer-parallel mode: trials run one after another, each on all ranks together (see
// run_trial_distributed in trial.h): layers are split across ranks for quantization and the
// evaluation set is sharded; the result equals the single-rank run.
//
// A trial that throws is recorded FAILED with its message and the sweep goes on. Killing any
// rank or the whole job loses at most the trials in flight: their files were never renamed into
// place, and a rerun of the same command redoes them.
#pragma once

#include <string>
#include <vector>

#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/sweep/trial.h"

namespace mpq::sweep {

struct SweepOptions {
  bool force = false;  ///< reuse a results directory that holds a different sweep config
};

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
