// Launching sweeps on Slurm (`mpq slurm submit|cancel`, and the Slurm part of `mpq status`;
// slurm/README.md, docs/sweeps.md).
//
// submit validates everything first (the sweep file, the options, that sbatch exists), then
// writes readable, reusable batch scripts to <results_dir>/<sweep>/slurm/ next to a copy of the
// sweep file, submits them with `sbatch --parsable` and records the job ids in
// slurm/jobs.jsonl:
//   array mode  prepare.sbatch: one task running `mpq sweep prepare` (default models, plan);
//               array.sbatch: K tasks (--array=0-(K-1)%M) each running `mpq sweep work`,
//               submitted with --dependency=afterok:<prepare job>. The workers claim trials
//               through the sweep directory (store/claims.h): no MPI between them.
//   mpi mode    mpi.sbatch: one allocation (--nodes, --ntasks-per-node) running
//               `mpirun -np $SLURM_NTASKS mpq sweep run` (rank 0 prepares).
// Every script asks for --signal=B:USR1@<grace> and --requeue; the batch shell forwards USR1 and
// TERM to mpq; a worker stopped by the time limit exits with 3 and the script requeues its job
// (scontrol requeue) as long as that start finished a trial; after max_stalls starts in a row
// that finished none, or max_requeues requeues in all (SLURM_RESTART_COUNT, a safety net), it
// gives up and writes one line to slurm/gave-up (gave_up_line, `mpq status`). Submitting again
// after an interruption runs only what is left (done trials are skipped, stale claims expire).
#pragma once

#include <string>
#include <vector>

#include "mpq/sweep/sweep_config.h"

namespace mpq::launch {

struct SubmitOptions {
  sweep::SweepOverrides overrides;  ///< --var / --set (the scripts get the resolved sweep)
  std::string mode = "array";       ///< "array" or "mpi"
  int nodes = 1, ntasks_per_node = 2, cpus_per_task = 1;
  std::string time = "01:00:00";  ///< Slurm time limit (any sbatch --time format)
  std::string partition, account;
  int array_tasks = 4;                   ///< K workers (array mode)
  int max_concurrent = 0;                ///< %M of --array (0 = no limit)
  std::vector<std::string> sbatch_args;  ///< extra #SBATCH lines, e.g. "--qos=short"
  int signal_seconds = 0;  ///< USR1 this long before the limit (0 = a tenth of it, 30..300 s)
  int max_requeues = 100;  ///< safety net: requeues in all
  int max_stalls = 2;      ///< give up after this many starts in a row that finished no trial
  bool dry_run = false;    ///< print the scripts, submit nothing
};

struct SubmitResult {
  std::string slurm_dir;
  std::vector<std::string> scripts;                       ///< written script paths
  std::vector<std::pair<std::string, std::string>> jobs;  ///< (kind, job id) submitted
  std::string dry_run_text;                               ///< the scripts, with the sbatch commands
  std::string warning;  ///< "" or why the time limit may be short for this sweep's trials
};

/// Seconds of a Slurm time limit: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S". Throws
/// ConfigError for anything else.
long long parse_slurm_time(const std::string& text);

/// Validates and submits (see the header). ConfigError for a bad sweep or option (nothing is
/// written or submitted), InputError if sbatch is missing or refuses a script.
SubmitResult submit(const std::string& sweep_file, const SubmitOptions& options);

/// The recorded jobs of a sweep directory with their current Slurm state (squeue; sacct when
/// the job left the queue and accounting exists), as a Markdown table ("" if none recorded).
std::string jobs_table(const std::string& sweep_dir);

/// "" unless a job of the sweep gave up requeueing (slurm/gave-up, cleared when a job of the
/// sweep starts again): then one line saying why and the command that continues the sweep.
std::string gave_up_line(const std::string& sweep_dir);

/// scancel of every recorded job; returns the ids cancelled. InputError if scancel fails.
std::vector<std::string> cancel(const std::string& sweep_dir);

}  // namespace mpq::launch
