// mpq sweep plan | run | prepare | work: expand a JSON sweep and run its trials (MPI ranks, or
// independent workers sharing the results directory through claims).
#include <cstdio>

#include "mpq/report/aggregate.h"
#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/mpi_session.h"
#include "mpq/sweep/runner.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/worker.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/threads.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {

class Plan : public Verb {
 public:
  explicit Plan(CLI::App* sweep)
      : Verb(sweep->add_subcommand("plan",
                                   "print the trials a sweep expands to, without running them")) {
    command_->footer(
        "Examples:\n"
        "  mpq sweep plan configs/sweeps/default.json\n"
        "Trial ids need the model files: default models are trained (and cached) first if "
        "missing.");
    command_->add_option("sweep", file_, "sweep JSON file")->required();
    add_sweep_overrides(command_, over_);
  }

  int run(int*, char***) override {
    apply_threads(0);
    auto spec = sweep::load_sweep(file_, over_);
    auto trials = sweep::plan_trials(spec);
    report::Table t({"#", "trial id", "settings"});
    for (size_t i = 0; i < trials.size(); ++i)
      t.add_row({std::to_string(i), trials[i].id.substr(0, 16), trials[i].settings.dump()});
    std::printf("sweep %s: %zu trials -> %s/%s\n\n%s", spec.name.c_str(), trials.size(),
                spec.run.results_dir.c_str(), spec.name.c_str(), t.markdown().c_str());
    return kExitOk;
  }

 private:
  std::string file_;
  sweep::SweepOverrides over_;
};

class Run : public Verb {
 public:
  explicit Run(CLI::App* sweep)
      : Verb(sweep->add_subcommand("run",
                                   "run (or resume) a sweep; trial-parallel over MPI ranks")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpirun -np 2 mpq sweep run configs/sweeps/default.json\n"
        "  mpq sweep run configs/sweeps/default.json          # one process, no mpirun\n"
        "Re-running the same command resumes: done trials are skipped, failed ones retried up "
        "to\n"
        "run.max_attempts, interrupted ones redone. Results: <run.results_dir>/<name>/.");
    c->add_option("sweep", file_, "sweep JSON file")->required();
    add_sweep_overrides(c, over_);
    c->add_flag("--force", force_, "reuse a results directory that holds a different sweep config");
    c->add_flag("--aggregate", aggregate_, "print the aggregate table when done (rank 0)");
    c->add_option("--simulate-trial-seconds", simulate_,
                  "benchmarks of the scheduler and store only: sleep instead of computing, write "
                  "a minimal trial file");
  }

  int run(int* argc, char*** argv) override {
    sweep::MpiSession mpi(argc, argv);
    if (mpi.rank() != 0) set_quiet(true);
    sweep::SweepSpec spec;
    std::string load_error;
    int load_code = 0;
    try {
      spec = sweep::load_sweep(file_, over_);
    } catch (const ConfigError& e) {
      load_error = e.what(), load_code = kExitUsage;
    } catch (const InputError& e) {
      load_error = e.what(), load_code = kExitRuntime;
    }
    if (load_code != 0) {  // every rank read the same file; only rank 0 reports
      if (mpi.rank() == 0) std::fprintf(stderr, "mpq: %s\n", load_error.c_str());
      return load_code;
    }
    sweep::SweepOptions so;
    so.force = force_;
    so.simulate_seconds = simulate_;
    sweep::SweepResult res;
    try {
      res = sweep::run_sweep(spec, so, mpi.rank(), mpi.size());
    } catch (const sweep::SilentExit& e) {
      return e.code;
    } catch (...) {
      // Report before MPI_Finalize (which would wait for the other ranks forever), then take
      // the other ranks down with this one.
      int code = report_error(std::current_exception());
      if (mpi.size() > 1) sweep::mpi_abort(code);
      return code;
    }
    if (mpi.rank() != 0) return kExitOk;
    const auto& st = res.final_status;
    std::printf(
        "sweep %s: %d trials: %d done, %d failed, %d gave up, %d pending, %d running elsewhere "
        "(this run: %d ok, %d failed, %.1f s%s)\n",
        res.dir.c_str(), static_cast<int>(st.trials.size()), st.done, st.failed, st.gave_up,
        st.pending, st.running, res.succeeded, res.failed, res.seconds,
        res.stopped ? ", stopped by SIGUSR1" : "");
    if (aggregate_) {
      report::AggregateOptions ao;
      std::printf("\n%s", report::aggregate_sweep(res.dir, ao).markdown.c_str());
    }
    return res.stopped ? sweep::kExitStopped : kExitOk;
  }

 private:
  std::string file_;
  sweep::SweepOverrides over_;
  bool force_ = false, aggregate_ = false;
  double simulate_ = -1;
};

class Prepare : public Verb {
 public:
  explicit Prepare(CLI::App* sweep)
      : Verb(sweep->add_subcommand(
            "prepare", "prepare a sweep directory once: default models, fingerprints, plan.json")) {
    command_->footer(
        "Examples:\n"
        "  mpq sweep prepare configs/sweeps/default.json\n"
        "What `mpq slurm submit` runs before an array's workers (they would otherwise wait for\n"
        "whichever prepares first). Idempotent and cheap when everything is cached.");
    command_->add_option("sweep", file_, "sweep JSON file")->required();
    add_sweep_overrides(command_, over_);
    command_->add_flag("--force", force_, "reuse a results directory that holds a different sweep");
  }

  int run(int*, char***) override {
    apply_threads(0);
    auto spec = sweep::load_sweep(file_, over_);
    store::SweepDir dir(spec.run.results_dir + "/" + spec.name);
    sweep::TrialContext ctx;
    sweep::SweepOptions o;
    o.force = force_;
    auto plan = sweep::prepare_sweep(spec, o, dir, ctx);
    std::printf("prepared %s: %zu trials\n", dir.dir().c_str(), plan.size());
    return kExitOk;
  }

 private:
  std::string file_;
  sweep::SweepOverrides over_;
  bool force_ = false;
};

class Work : public Verb {
 public:
  explicit Work(CLI::App* sweep)
      : Verb(sweep->add_subcommand(
            "work", "one independent worker (no MPI): claim and run trials until none is left")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq sweep work configs/sweeps/default.json &   # as many as you like, on any hosts\n"
        "  mpq sweep work sweep.json --stop-grace 120     # what Slurm array tasks run\n"
        "Workers share the results directory through per-trial claims with leases "
        "(run.lease_seconds):\n"
        "a killed worker's trials are taken over once its claims expire. SIGUSR1: stop "
        "claiming,\n"
        "finish the current trial if the --stop-grace seconds allow, else hand it back; exit 3.\n"
        "SIGTERM: release every claim and exit 143.");
    c->add_option("sweep", file_, "sweep JSON file")->required();
    add_sweep_overrides(c, over_);
    c->add_option("--stop-grace", grace_,
                  "seconds between SIGUSR1 and the time limit (0 = always finish the trial)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--max-trials", max_, "stop after N trials (0 = no limit)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--simulate-trial-seconds", simulate_,
                  "benchmarks of the store only: sleep instead of computing, write a minimal "
                  "trial file");
    c->add_flag("--force", force_, "reuse a results directory that holds a different sweep");
  }

  int run(int*, char***) override {
    auto spec = sweep::load_sweep(file_, over_);
    sweep::WorkerOptions o;
    o.sweep.force = force_;
    o.stop_grace = grace_;
    o.max_trials = max_;
    o.sweep.simulate_seconds = simulate_;
    auto r = sweep::run_worker(spec, o);
    std::printf(
        "worker %s: ran %d (%d ok, %d failed), %d already done, %d left to other workers, "
        "%.1f s (store %.3f s)%s\n",
        r.worker.c_str(), r.ran, r.succeeded, r.failed, r.already_done, r.left_to_others, r.seconds,
        r.store_seconds, r.stopped ? ", stopped by SIGUSR1" : "");
    return r.stopped ? sweep::kExitStopped : kExitOk;
  }

 private:
  std::string file_;
  sweep::SweepOverrides over_;
  double grace_ = 0, simulate_ = -1;
  int max_ = 0;
  bool force_ = false;
};

}  // namespace

void add_sweep(CLI::App& app, Verbs& verbs) {
  auto* sweep =
      app.add_subcommand("sweep", "expand a JSON sweep into trials and run them on MPI ranks");
  sweep->require_subcommand(1);
  verbs.push_back(std::make_unique<Plan>(sweep));
  verbs.push_back(std::make_unique<Run>(sweep));
  verbs.push_back(std::make_unique<Prepare>(sweep));
  verbs.push_back(std::make_unique<Work>(sweep));
}

}  // namespace mpq::cli
