#include "mpq/sweep/runner.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "mpq/eval/task.h"
#include "mpq/store/claims.h"
#include "mpq/store/trial_file.h"
#include "mpq/sweep/mpi_distribution.h"
#include "mpq/sweep/mpi_session.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/train/train.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"
#include "mpq/util/signals.h"
#include "mpq/util/threads.h"

namespace mpq::sweep {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kTagRequest = 11;  // worker -> rank 0: {"result": {...} | null}
constexpr int kTagAssign = 12;   // rank 0 -> worker: {"work": index} | {"stop": true}

// Outcome of one trial on a worker, reported to rank 0.
struct Report {
  int work = -1;
  bool ok = false;
  std::string message;
  double seconds = 0;  // execute() wall time: the trial plus writing its file
  double busy = 0;     // assignment to report
  double wait = 0;     // asking for this trial until it was assigned (scheduling latency)
};

json to_json(const Report& r) {
  return {{"work", r.work},       {"ok", r.ok},     {"message", r.message},
          {"seconds", r.seconds}, {"busy", r.busy}, {"wait", r.wait}};
}
Report from_json(const json& j) {
  return {
      j.at("work").get<int>(),       j.at("ok").get<bool>(),     j.at("message").get<std::string>(),
      j.at("seconds").get<double>(), j.at("busy").get<double>(), j.at("wait").get<double>()};
}

// Runs one work item on this rank (or on all ranks with `dist`); never throws.
// `simulate_seconds` >= 0: SweepOptions::simulate_seconds (in layer mode only rank 0 writes).
Report execute(const json& item, TrialContext& ctx, int threads, double simulate_seconds,
               TrialDistribution* dist = nullptr, bool writes = true) {
  Report r;
  double t0 = monotonic_seconds();
  ThreadQuiet quiet;  // the sweep bar on rank 0 reports progress; trials stay silent
  try {
    json cfg = item.at("config");
    cfg["threads"] = threads;
    if (simulate_seconds >= 0) {
      if (writes) run_simulated_trial(item.at("id").get<std::string>(), cfg, simulate_seconds);
    } else {
      auto out = run_trial(cfg, ctx, dist);
      if (out.record.trial_id != item.at("id").get<std::string>())
        throw InputError(
            "trial id changed between planning and running (model or data files modified?)");
    }
    r.ok = true;
  } catch (const ConfigError& e) {
    r.message = e.what();
  } catch (const InputError& e) {
    r.message = e.what();
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    r.message = m.substr(0, m.find('\n'));
  } catch (const std::exception& e) {
    r.message = e.what();
  }
  r.seconds = monotonic_seconds() - t0;
  return r;
}

// Rank 0's bookkeeping, shared by the scheduler thread and rank 0's own worker loop: picks
// trials through claims, records started/done/failed in this job's ledger, releases claims.
class Scheduler {
 public:
  Scheduler(const json& work, store::Ledger& ledger, TrialPicker& picker, store::ClaimStore& claims)
      : work_(work),
        ledger_(ledger),
        picker_(picker),
        claims_(claims),
        bar_("sweep", static_cast<int64_t>(work.size())) {}

  // Next work index for `rank`, or -1 when none is left (or a stop was requested).
  int next(int rank) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_requested()) {
      stopped = true;
      return -1;
    }
    const int w = picker_.next();
    if (w < 0) return -1;
    const std::string id = work_[static_cast<size_t>(w)].at("id");
    ledger_.append({{"event", "started"},
                    {"trial", id},
                    {"rank", rank},
                    {"attempt", picker_.attempts(id) + 1}});
    return w;
  }

  void report(int rank, const Report& r) {
    std::lock_guard<std::mutex> lock(mu_);
    const json& item = work_[static_cast<size_t>(r.work)];
    const std::string id = item.at("id");
    json rec = {{"trial", id},
                {"rank", rank},
                {"seconds", r.seconds},
                {"wait", r.wait},
                {"attempt", picker_.attempts(id) + 1}};
    if (r.ok) {
      rec["event"] = "done";
      ++succeeded;
    } else {
      rec["event"] = "failed";
      rec["message"] = r.message;
      picker_.count_failure(id);
      ++failed;
      info("trial " + id.substr(0, 12) + " " + item.at("settings").dump() +
           " FAILED: " + r.message);
    }
    ledger_.append(rec);
    claims_.release(id);  // after the file was renamed into place (or the failure recorded)
    trial_seconds += r.seconds;
    busy_seconds += r.busy;
    bar_.advance(1, std::to_string(succeeded) + " done, " + std::to_string(failed) + " failed");
  }

  void finish() { bar_.finish(); }

  int succeeded = 0, failed = 0;
  bool stopped = false;
  double trial_seconds = 0, busy_seconds = 0;

 private:
  std::mutex mu_;
  const json& work_;
  store::Ledger& ledger_;
  TrialPicker& picker_;
  store::ClaimStore& claims_;
  Progress bar_;
};

// The scheduler thread on rank 0: serves the other ranks until each was told to stop.
void serve(Scheduler& sched, int size) {
  int stopped = 0;
  while (stopped < size - 1) {
    int src = -1;
    if (!mpi_probe(kTagRequest, &src)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    json req = json::parse(mpi_recv_string(src, kTagRequest, nullptr));
    if (!req["result"].is_null()) sched.report(src, from_json(req["result"]));
    int w = sched.next(src);
    if (w < 0) {
      mpi_send_string(json{{"stop", true}}.dump(), src, kTagAssign);
      ++stopped;
    } else {
      mpi_send_string(json{{"work", w}}.dump(), src, kTagAssign);
    }
  }
}

// Rank 0 preparation; returns the broadcast payload {"work": [...]} or throws.
json prepare(const SweepSpec& spec, const SweepOptions& opt, store::SweepDir& dir,
             std::vector<store::PlannedTrial>& plan, int& already_done, TrialContext& ctx) {
  plan = prepare_sweep(spec, opt, dir, ctx);
  auto status = dir.status(spec.run.max_attempts);
  json work = json::array();
  already_done = status.done;
  for (const auto& [p, state] : status.trials) {
    if (state == store::TrialState::kDone || state == store::TrialState::kGaveUp) continue;
    // Crash-loop guard: a trial started many times without ever finishing is given up too.
    auto it = status.history.find(p.id);
    if (it != status.history.end() && it->second.started >= 2 * spec.run.max_attempts + 1 &&
        it->second.failed + it->second.done == 0) {
      info("trial " + p.id.substr(0, 12) + " started " + std::to_string(it->second.started) +
           " times without finishing: giving up on it");
      continue;
    }
    json cfg = p.config;
    cfg["output"] = dir.trial_path(p.id);
    work.push_back({{"id", p.id}, {"settings", p.settings}, {"config", cfg}});
  }
  return json{{"work", work}};
}

std::vector<store::PlannedTrial> as_plan(const json& work) {
  std::vector<store::PlannedTrial> v;
  for (const auto& w : work) v.push_back({w.at("id"), w.at("settings"), w.at("config")});
  return v;
}

// FP references of every (model, evaluation set) the work needs, computed once across all
// ranks: each rank evaluates a batch-aligned shard, the shards are gathered, so no rank repeats
// the full FP pass on its first trial. Keys a rank cannot load are skipped by all (the trials
// concerned then fail on their own).
void precompute_fp_references(const json& work, TrialContext& ctx, int rank, int size) {
  std::vector<std::string> seen;
  for (const auto& item : work) {
    const json& c = item.at("config");
    json k = {{"model", c["model"]}, {"data", c["data"]}};
    std::string ks = k.dump();
    if (std::find(seen.begin(), seen.end(), ks) != seen.end()) continue;
    seen.push_back(ks);

    TrialConfig cfg = parse_trial_config(c);
    model::Network* net = nullptr;
    EvalSet set;
    eval::EvalShard part;
    std::unique_ptr<eval::TaskEvaluator> evaluator;
    int64_t n = 0;
    double failed = 0;
    try {
      ThreadQuiet quiet;
      set = ctx.eval_set(cfg.data, true, default_threads());
      net = &load_trial_network(cfg, *set.data, ctx);
      evaluator = eval::make_evaluator(set.data->task(), cfg.detection);
      n = set.data->size();
      eval::EvalRun r;
      r.batch_size = eval_batch(cfg, *net);
      r.loader = cfg.data.loader(default_threads());
      std::tie(r.begin, r.end) = eval_shard(n, r.batch_size, rank, size);
      part = evaluate_network(*net, cfg.eval_engine, nullptr, *evaluator, *set.data, r, nullptr);
    } catch (const std::exception&) {
      failed = 1;
    }
    mpi_allreduce_sum(&failed, 1);
    if (failed > 0) continue;
    auto packed = mpi_gather_strings(eval::pack_shard(part), 0);
    std::string all;
    if (rank == 0) {
      std::vector<eval::EvalShard> shards;
      for (const auto& p : packed) shards.push_back(eval::unpack_shard(p));
      all = eval::pack_shard(eval::concat_shards(shards));
    }
    mpi_bcast_string(all, 0);
    ctx.put_fp_reference(
        fp_reference_key(*net, *set.data, eval_batch(cfg, *net), *evaluator, cfg.eval_engine), 0, n,
        eval::unpack_shard(all));
  }
}

}  // namespace

std::vector<store::PlannedTrial> plan_trials(const SweepSpec& spec, TrialContext* shared) {
  // Fingerprints are computed once per distinct model reference and dataset.
  std::map<std::string, std::string> model_sha, data_fp;
  TrialContext local;
  TrialContext& ctx = shared ? *shared : local;
  std::vector<store::PlannedTrial> plan;
  for (const auto& t : spec.trials) {
    const json& c = t.config;
    const TrialConfig cfg = parse_trial_config(c);
    std::string dkey = json{{"data", c["data"]}, {"split", cfg.data.calibration_split}}.dump() +
                       (cfg.uses_calibration_data() ? "|calibrated" : "");
    if (!data_fp.count(dkey)) data_fp[dkey] = data_identity(cfg, ctx);
    std::string mkey = cfg.model.path + "|" + cfg.model.cache_dir;
    if (!model_sha.count(mkey)) model_sha[mkey] = sha256_file(resolve_model_path(cfg));
    plan.push_back({trial_id(cfg, model_sha[mkey], data_fp[dkey]), t.settings, c});
  }
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < plan.size(); ++i) {
    auto [it, fresh] = seen.emplace(plan[i].id, i);
    if (!fresh)
      throw ConfigError(spec.source + ": trials " + std::to_string(it->second) + " " +
                        plan[it->second].settings.dump() + " and " + std::to_string(i) + " " +
                        plan[i].settings.dump() +
                        " are the same trial (same model file and config)");
  }
  return plan;
}

namespace {

/// Rank 0 prepares the sweep (plan, fingerprints, FP check) and broadcasts what to run; an error
/// there is thrown on rank 0 with its exit code and ends the other ranks silently.
json prepare_and_broadcast(const SweepSpec& spec, const SweepOptions& opt, store::SweepDir& dir,
                           std::vector<store::PlannedTrial>& plan, int& already_done,
                           TrialContext& ctx, int rank) {
  std::string payload;
  if (rank == 0) {
    try {
      payload = prepare(spec, opt, dir, plan, already_done, ctx).dump();
    } catch (const ConfigError& e) {
      payload = json{{"error", e.what()}, {"code", kExitUsage}}.dump();
    } catch (const InputError& e) {
      payload = json{{"error", e.what()}, {"code", kExitRuntime}}.dump();
    } catch (const std::exception& e) {
      payload = json{{"error", e.what()}, {"code", kExitRuntime}}.dump();
    }
  }
  mpi_bcast_string(payload, 0);
  json prep = json::parse(payload);
  if (prep.contains("error")) {
    int code = prep["code"].get<int>();
    if (rank != 0) throw SilentExit{code};
    if (code == kExitUsage) throw ConfigError(prep["error"].get<std::string>());
    throw InputError(prep["error"].get<std::string>());
  }
  return prep;
}

/// What rank 0 keeps while the sweep runs: claims, this job's ledger, lease renewal (and SIGTERM
/// handling), the scheduler.
struct Coordinator {
  std::unique_ptr<store::ClaimStore> claims;
  std::unique_ptr<store::Ledger> ledger;
  std::unique_ptr<TrialPicker> picker;
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<Heartbeat> heartbeat;
};

Coordinator start_coordinator(const SweepSpec& spec, store::SweepDir& dir, const json& work,
                              size_t planned, int already_done, int size, int threads) {
  Coordinator c;
  auto me = store::WorkerIdentity::current("mpi");
  c.claims = std::make_unique<store::ClaimStore>(dir.claims_dir(), me, spec.run.lease_seconds);
  const int cleaned = dir.clean_stale_temps(*c.claims);
  if (cleaned > 0) info("removed " + std::to_string(cleaned) + " temporary file(s) of killed runs");
  c.ledger = std::make_unique<store::Ledger>(dir.ledger_path(me.id), me.to_json());
  c.picker = std::make_unique<TrialPicker>(dir, *c.claims, as_plan(work), spec.run.max_attempts);
  c.sched = std::make_unique<Scheduler>(work, *c.ledger, *c.picker, *c.claims);
  c.heartbeat = std::make_unique<Heartbeat>(*c.claims, *c.ledger);
  info("sweep " + spec.name + ": " + std::to_string(planned) + " trials, " +
       std::to_string(already_done) + " already done, " + std::to_string(work.size()) + " to run" +
       (spec.run.mode == RunMode::kLayers ? " layer-parallel" : "") + " on " +
       std::to_string(size) + " rank(s) x " + std::to_string(threads) + " thread(s)");
  c.ledger->append({{"event", "sweep_start"},
                    {"ranks", size},
                    {"threads_per_rank", threads},
                    {"work", static_cast<int>(work.size())},
                    {"mode", run_mode_name(spec.run.mode)}});
  return c;
}

/// Layer-parallel: every rank takes part in every trial; rank 0 picks, all follow.
void run_layer_parallel(const json& work, TrialContext& ctx, int threads, double sim,
                        Scheduler* sched, int rank, int size) {
  MpiTrialDistribution dist(rank, size);
  for (;;) {
    std::string pick = rank == 0 ? std::to_string(sched->next(0)) : "";
    mpi_bcast_string(pick, 0);
    const int w = std::stoi(pick);
    if (w < 0) break;
    double a = monotonic_seconds();
    Report r = execute(work[static_cast<size_t>(w)], ctx, threads, sim, &dist, rank == 0);
    r.work = w;
    r.busy = monotonic_seconds() - a;
    if (rank == 0) sched->report(0, r);
  }
}

/// Trial-parallel, rank 0: serves the other ranks from a thread and runs trials itself.
void run_coordinator_rank(const json& work, TrialContext& ctx, int threads, double sim,
                          Scheduler& sched, int size) {
  if (size > 1 && sim < 0) precompute_fp_references(work, ctx, 0, size);
  std::thread server;
  if (size > 1) server = std::thread([&] { serve(sched, size); });
  for (;;) {  // rank 0 works too
    double asked = monotonic_seconds();
    int w = sched.next(0);
    if (w < 0) break;
    double a = monotonic_seconds();
    Report r = execute(work[static_cast<size_t>(w)], ctx, threads, sim);
    r.work = w;
    r.busy = monotonic_seconds() - a;
    r.wait = a - asked;
    sched.report(0, r);
  }
  if (server.joinable()) server.join();
}

/// Trial-parallel, other ranks: ask rank 0 for work, report the last result with each request.
void run_worker_rank(const json& work, TrialContext& ctx, int threads, double sim, int rank,
                     int size) {
  if (sim < 0) precompute_fp_references(work, ctx, rank, size);
  json last = nullptr;
  for (;;) {
    double asked = monotonic_seconds();
    mpi_send_string(json{{"result", last}}.dump(), 0, kTagRequest);
    json msg = json::parse(mpi_recv_string(0, kTagAssign, nullptr));
    if (msg.contains("stop")) break;
    int w = msg["work"].get<int>();
    double a = monotonic_seconds();
    Report r = execute(work[static_cast<size_t>(w)], ctx, threads, sim);
    r.work = w;
    r.busy = monotonic_seconds() - a;
    r.wait = a - asked;
    last = to_json(r);
  }
}

/// Rank 0 after the last trial: the counts, the ledger's end event, the final status.
void finish_coordinator(Coordinator& c, const SweepSpec& spec, store::SweepDir& dir, int size,
                        SweepResult& result) {
  Scheduler& sched = *c.sched;
  sched.finish();
  c.heartbeat.reset();
  result.ran = sched.succeeded + sched.failed;
  result.succeeded = sched.succeeded;
  result.failed = sched.failed;
  result.trial_seconds = sched.trial_seconds;
  result.busy_seconds = sched.busy_seconds;
  result.stopped = sched.stopped;
  result.left_to_others = c.picker->left_to_others();
  c.ledger->append({{"event", "sweep_end"},
                    {"succeeded", sched.succeeded},
                    {"failed", sched.failed},
                    {"stopped", sched.stopped},
                    {"ranks", size}});
  result.final_status = dir.status(spec.run.max_attempts);
}

}  // namespace

SweepResult run_sweep(const SweepSpec& spec, const SweepOptions& opt, int rank, int size) {
  double t0 = monotonic_seconds();
  SweepResult result;
  store::SweepDir dir(spec.run.results_dir + "/" + spec.name);
  result.dir = dir.dir();
  std::vector<store::PlannedTrial> plan;
  TrialContext ctx;  // shared by planning (rank 0) and this rank's trials
  if (rank == 0) install_stop_handlers();
  const json prep = prepare_and_broadcast(spec, opt, dir, plan, result.already_done, ctx, rank);
  const json& work = prep["work"];
  result.planned = rank == 0 ? static_cast<int>(plan.size()) : 0;

  int threads = spec.run.threads_per_rank > 0 ? spec.run.threads_per_rank : default_threads();
  apply_threads(threads);
  Coordinator coordinator;
  if (rank == 0)
    coordinator =
        start_coordinator(spec, dir, work, plan.size(), result.already_done, size, threads);

  const double sim = opt.simulate_seconds;
  if (spec.run.mode == RunMode::kLayers)
    run_layer_parallel(work, ctx, threads, sim, coordinator.sched.get(), rank, size);
  else if (rank == 0)
    run_coordinator_rank(work, ctx, threads, sim, *coordinator.sched, size);
  else
    run_worker_rank(work, ctx, threads, sim, rank, size);
  if (rank == 0) finish_coordinator(coordinator, spec, dir, size, result);
  mpi_barrier();
  result.seconds = monotonic_seconds() - t0;
  return result;
}

}  // namespace mpq::sweep
