// mpq slurm submit | cancel: sweeps as Slurm MPI jobs or job arrays (slurm/README.md).
#include "mpq/launch/slurm.h"

#include <cstdio>

#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {

class Submit : public Verb {
 public:
  explicit Submit(CLI::App* slurm)
      : Verb(slurm->add_subcommand(
            "submit", "validate a sweep, write its batch scripts, submit them with sbatch")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq slurm submit configs/sweeps/voc.json --array-tasks 8 --time 02:00:00\n"
        "  mpq slurm submit sweep.json --mode mpi --nodes 2 --ntasks-per-node 4 --cpus-per-task "
        "8\n"
        "  mpq slurm submit sweep.json --dry-run          # print the scripts, submit nothing\n"
        "Scripts go to <results_dir>/<sweep>/slurm/ (reusable), job ids to slurm/jobs.jsonl.\n"
        "Jobs ask for --signal=B:USR1@<grace> and --requeue: near the time limit workers hand\n"
        "their trials back and requeue, as long as each start finishes a trial (give up after\n"
        "--max-stalls starts in a row that finish none; `mpq status` then says so). Submitting\n"
        "again after an interruption runs only what is left. See slurm/README.md.");
    auto& o = options_;
    c->add_option("sweep", file_, "sweep JSON file")->required();
    add_sweep_overrides(c, o.overrides);
    c->add_option("--mode", o.mode, "array (independent workers) | mpi (one allocation)")
        ->capture_default_str();
    c->add_option("--nodes", o.nodes, "mpi mode: nodes")->capture_default_str();
    c->add_option("--ntasks-per-node", o.ntasks_per_node, "mpi mode: MPI ranks per node")
        ->capture_default_str();
    c->add_option("--cpus-per-task", o.cpus_per_task, "threads per rank / worker")
        ->capture_default_str();
    c->add_option("--time", o.time, "time limit per job (Slurm format)")->capture_default_str();
    c->add_option("--partition", o.partition, "Slurm partition");
    c->add_option("--account", o.account, "Slurm account");
    c->add_option("--array-tasks", o.array_tasks, "array mode: workers")->capture_default_str();
    c->add_option("--max-concurrent", o.max_concurrent,
                  "array mode: at most M workers at once (0 = no limit)");
    c->add_option("--sbatch-arg", o.sbatch_args,
                  "extra sbatch option for the scripts, e.g. --sbatch-arg=--qos=short "
                  "(repeatable)");
    c->add_option("--signal-seconds", o.signal_seconds,
                  "USR1 this long before the time limit (default: a tenth of it, 30..300 s)");
    c->add_option("--max-requeues", o.max_requeues,
                  "requeues after time limits in all (a safety net)")
        ->capture_default_str();
    c->add_option("--max-stalls", o.max_stalls,
                  "give up after this many starts in a row that finished no trial")
        ->capture_default_str();
    c->add_flag("--dry-run", o.dry_run, "print the scripts, submit nothing");
  }

  int run(int*, char***) override {
    auto r = launch::submit(file_, options_);
    if (!r.warning.empty()) std::fprintf(stderr, "mpq: warning: %s\n", r.warning.c_str());
    if (options_.dry_run) {
      std::fputs(r.dry_run_text.c_str(), stdout);
      return kExitOk;
    }
    for (const auto& s : r.scripts) std::printf("wrote %s\n", s.c_str());
    for (const auto& [kind, id] : r.jobs)
      std::printf("submitted %s job %s\n", kind.c_str(), id.c_str());
    return kExitOk;
  }

 private:
  launch::SubmitOptions options_;
  std::string file_;
};

class Cancel : public Verb {
 public:
  explicit Cancel(CLI::App* slurm)
      : Verb(slurm->add_subcommand("cancel", "scancel every job recorded for a sweep")) {
    command_->footer("Examples:\n  mpq slurm cancel results/voc");
    command_->add_option("dir", dir_, "sweep results directory")->required();
  }

  int run(int*, char***) override {
    auto ids = launch::cancel(dir_);
    std::printf("cancelled %zu job(s)%s\n", ids.size(), ids.empty() ? " (none recorded)" : "");
    return kExitOk;
  }

 private:
  std::string dir_;
};

}  // namespace

void add_slurm(CLI::App& app, Verbs& verbs) {
  auto* slurm = app.add_subcommand("slurm", "launch sweeps on Slurm: MPI jobs or job arrays");
  slurm->require_subcommand(1);
  verbs.push_back(std::make_unique<Submit>(slurm));
  verbs.push_back(std::make_unique<Cancel>(slurm));
}

}  // namespace mpq::cli
