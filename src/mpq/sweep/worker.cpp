#include "mpq/sweep/worker.h"

#include <chrono>
#include <mutex>
#include <thread>

#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/provenance.h"
#include "mpq/util/signals.h"
#include "mpq/util/threads.h"

namespace mpq::sweep {
using nlohmann::json;

namespace {

// Where in the plan this worker starts (TrialPicker): array task k of K at k / K, so that tasks
// fan out over the plan instead of contending for the same first trials; other workers at a
// place drawn from their (unique) id.
double start_fraction(const store::WorkerIdentity& me) {
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
  if (id && count && std::atoi(count) > 0)
    return static_cast<double>(std::atoi(id) - (min ? std::atoi(min) : 0)) / std::atoi(count);
  return static_cast<double>(std::hash<std::string>{}(me.id) % 1000003) / 1000003.0;
}

}  // namespace

WorkerResult run_worker(const SweepSpec& spec, const WorkerOptions& opt) {
  const double t0 = monotonic_seconds();
  install_stop_handlers();
  store::SweepDir dir(spec.run.results_dir + "/" + spec.name);
  TrialContext ctx;
  auto plan = plan_or_prepare(spec, opt.sweep, dir, ctx);

  auto me = store::WorkerIdentity::current("work");
  WorkerResult result;
  result.worker = me.id;
  store::ClaimStore claims(dir.claims_dir(), me, spec.run.lease_seconds);
  store::Ledger ledger(dir.ledger_path(me.id), me.to_json());
  const int threads = apply_threads(spec.run.threads_per_rank);
  dir.clean_stale_temps(claims);
  TrialPicker picker(dir, claims, plan, spec.run.max_attempts, start_fraction(me));
  double median = median_trial_seconds(dir);

  // The trial in progress, for the time-limit check on the heartbeat thread.
  std::mutex mu;
  std::string current;
  double current_start = 0;
  auto check_time_limit = [&] {
    if (!stop_requested() || opt.stop_grace <= 0) return;
    std::lock_guard<std::mutex> lk(mu);
    if (current.empty()) return;
    const double left = opt.stop_grace - seconds_since_stop_request();
    const double needed = std::max(0.0, median - (monotonic_seconds() - current_start));
    if (median > 0 && needed < 0.8 * left) return;  // it will make it: let it finish
    claims.abandon(current);
    ledger.append({{"event", "released"},
                   {"trial", current},
                   {"reason", "time limit: not enough time left to finish"}});
    std::fprintf(stderr, "mpq: time limit near: released trial %s, exiting for a requeue\n",
                 current.substr(0, 12).c_str());
    std::_Exit(kExitStopped);
  };
  Heartbeat heartbeat(claims, ledger, check_time_limit);
  ledger.append({{"event", "worker_start"}, {"threads", threads}, {"planned", plan.size()}});

  Progress bar("work " + spec.name, static_cast<int64_t>(plan.size()));
  for (;;) {
    if (stop_requested()) {
      result.stopped = true;
      break;
    }
    if (opt.max_trials > 0 && result.ran >= opt.max_trials) break;
    double a = monotonic_seconds();
    const int i = picker.next();
    result.store_seconds += monotonic_seconds() - a;
    if (i < 0) break;
    const auto& p = picker.trial(i);
    json cfg = p.config;
    cfg["output"] = dir.trial_path(p.id);
    cfg["threads"] = threads;
    a = monotonic_seconds();
    ledger.append({{"event", "started"}, {"trial", p.id}, {"attempt", picker.attempts(p.id) + 1}});
    {
      std::lock_guard<std::mutex> lk(mu);
      current = p.id;
      current_start = monotonic_seconds();
    }
    result.store_seconds += monotonic_seconds() - a;
    std::string error;
    const double ts = monotonic_seconds();
    try {
      ThreadQuiet quiet;
      if (opt.sweep.simulate_seconds >= 0) {
        run_simulated_trial(p.id, cfg, opt.sweep.simulate_seconds);
      } else {
        auto out = run_trial(cfg, ctx);
        if (out.record.trial_id != p.id)
          throw InputError(
              "trial id changed between planning and running (model or data files "
              "modified?)");
      }
    } catch (const c10::Error& e) {
      std::string m = e.what_without_backtrace();
      error = m.substr(0, m.find('\n'));
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double seconds = monotonic_seconds() - ts;
    a = monotonic_seconds();
    {
      std::lock_guard<std::mutex> lk(mu);
      current.clear();
    }
    json rec = {{"trial", p.id}, {"seconds", seconds}, {"attempt", picker.attempts(p.id) + 1}};
    ++result.ran;
    if (error.empty()) {
      rec["event"] = "done";
      ++result.succeeded;
      median = median > 0 ? median : seconds;
    } else {
      rec["event"] = "failed";
      rec["message"] = error;
      picker.count_failure(p.id);
      ++result.failed;
      info("trial " + p.id.substr(0, 12) + " " + p.settings.dump() + " FAILED: " + error);
    }
    for (const auto& lost : heartbeat.lost())
      if (lost == p.id) rec["claim_lost"] = true;  // taken over while we ran: a lease too short
    ledger.append(rec);
    claims.release(p.id);
    result.store_seconds += monotonic_seconds() - a;
    bar.advance(1, std::to_string(result.succeeded) + " done, " + std::to_string(result.failed) +
                       " failed");
  }
  bar.finish();
  result.already_done = picker.already_done();
  result.left_to_others = picker.left_to_others();
  ledger.append({{"event", "worker_end"},
                 {"ran", result.ran},
                 {"succeeded", result.succeeded},
                 {"failed", result.failed},
                 {"stopped", result.stopped},
                 {"store_seconds", result.store_seconds}});
  result.seconds = monotonic_seconds() - t0;
  return result;
}

}  // namespace mpq::sweep
