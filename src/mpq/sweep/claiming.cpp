#include "mpq/sweep/claiming.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "mpq/store/trial_file.h"
#include "mpq/sweep/fp_check.h"
#include "mpq/sweep/runner.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/provenance.h"
#include "mpq/util/signals.h"

namespace mpq::sweep {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<store::PlannedTrial> prepare_sweep(const SweepSpec& spec, const SweepOptions& opt,
                                               store::SweepDir& dir, TrialContext& ctx) {
  if (!fs::is_directory(spec.run.results_dir)) {
    std::error_code ec;
    fs::create_directories(spec.run.results_dir, ec);
    if (ec)
      throw ConfigError("/run/results_dir: cannot create " + spec.run.results_dir + " (" +
                        ec.message() + ")");
  }
  dir.init(spec.document, sweep_fingerprint(spec.document), opt.force);
  auto plan = plan_trials(spec, &ctx);
  // Before any trial can run: a wrong preprocessing, label mapping or checkpoint fails here.
  if (opt.simulate_seconds < 0) run_fp_checks(spec, plan, dir, ctx);
  dir.write_plan(plan);
  if (int n = dir.set_aside_invalid_trials(plan))
    info(std::to_string(n) +
         " trial file(s) present but invalid (truncated or corrupt): moved "
         "aside to trials/*.h5.invalid, redoing them");
  return plan;
}

std::vector<store::PlannedTrial> plan_or_prepare(const SweepSpec& spec, const SweepOptions& opt,
                                                 store::SweepDir& dir, TrialContext& ctx) {
  auto has_plan = [&] { return fs::exists(dir.plan_path()); };
  if (has_plan()) {
    dir.init(spec.document, sweep_fingerprint(spec.document), opt.force);  // same sweep?
    return dir.read_plan();
  }
  std::error_code ec;
  fs::create_directories(dir.dir(), ec);
  const std::string lock = dir.dir() + "/prepare.lock";
  const double lease = spec.run.lease_seconds;
  for (;;) {
    int fd = ::open(lock.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      try {
        auto plan = prepare_sweep(spec, opt, dir, ctx);
        ::unlink(lock.c_str());
        return plan;
      } catch (...) {
        ::unlink(lock.c_str());
        throw;
      }
    }
    // Someone else prepares: wait for the plan (or take over a lock left by a dead worker).
    for (;;) {
      if (has_plan()) {
        dir.init(spec.document, sweep_fingerprint(spec.document), opt.force);
        return dir.read_plan();
      }
      struct stat st {};
      if (::stat(lock.c_str(), &st) != 0) break;  // released without a plan: try ourselves
      if (static_cast<double>(std::time(nullptr) - st.st_mtime) > lease) {
        ::unlink(lock.c_str());
        break;
      }
      if (terminate_requested()) throw InputError("terminated while waiting for " + lock);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

TrialPicker::TrialPicker(const store::SweepDir& dir, store::ClaimStore& claims,
                         std::vector<store::PlannedTrial> plan, int max_attempts, double start)
    : dir_(dir), claims_(claims), plan_(std::move(plan)), max_attempts_(max_attempts) {
  for (const auto& [id, h] : store::fold_ledger(dir_.read_ledgers())) failures_[id] = h.failed;
  const size_t n = plan_.size();
  const size_t first = n ? static_cast<size_t>(std::clamp(start, 0.0, 1.0) * n) % n : 0;
  for (size_t k = 0; k < n; ++k) order_.push_back(static_cast<int>((first + k) % n));
}

int TrialPicker::attempts(const std::string& id) const {
  auto it = failures_.find(id);
  return it == failures_.end() ? 0 : it->second;
}

bool TrialPicker::done(const store::PlannedTrial& p) {
  // A stat: files are renamed into place only when complete, and invalid ones were set aside by
  // the preparation (SweepDir::set_aside_invalid_trials).
  return fs::exists(dir_.trial_path(p.id));
}

int TrialPicker::next() {
  for (;;) {
    if (pos_ >= order_.size()) {
      if (second_pass_ || deferred_.empty()) {
        left_to_others_ = static_cast<int>(deferred_.size());
        return -1;
      }
      // One more look at trials that were held elsewhere: a holder may have died.
      order_ = deferred_;
      deferred_.clear();
      pos_ = 0;
      second_pass_ = true;
    }
    const int i = order_[pos_++];
    const auto& p = plan_[static_cast<size_t>(i)];
    if (attempts(p.id) >= max_attempts_) continue;
    if (done(p)) {
      if (!second_pass_) ++already_done_;
      continue;
    }
    if (!claims_.try_claim(p.id)) {
      deferred_.push_back(i);
      continue;
    }
    // Finished by another worker between our check and our claim: give the claim back.
    if (done(p)) {
      claims_.release(p.id);
      continue;
    }
    return i;
  }
}

Heartbeat::Heartbeat(store::ClaimStore& claims, store::Ledger& ledger,
                     std::function<void()> on_tick)
    : claims_(claims), ledger_(ledger), on_tick_(std::move(on_tick)) {
  thread_ = std::thread([this] {
    const auto interval = std::chrono::duration<double>(claims_.lease_seconds() / 4.0);
    auto last = std::chrono::steady_clock::now() - interval;
    while (!stop_) {
      if (terminate_requested()) {
        // Hand the trials back at once; their temporary files are cleaned by the next worker.
        const auto held = claims_.held();
        claims_.abandon_all();
        try {
          ledger_.append({{"event", "terminated"}, {"released", held}});
        } catch (const std::exception&) {
        }
        std::fprintf(stderr, "mpq: terminated: released %zu claim(s)\n", held.size());
        std::_Exit(143);
      }
      if (std::chrono::steady_clock::now() - last >= interval) {
        auto l = claims_.heartbeat();
        last = std::chrono::steady_clock::now();
        if (!l.empty()) {
          std::lock_guard<std::mutex> lk(mu_);
          lost_.insert(lost_.end(), l.begin(), l.end());
        }
      }
      if (on_tick_) on_tick_();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

Heartbeat::~Heartbeat() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> Heartbeat::lost() {
  std::lock_guard<std::mutex> lk(mu_);
  auto l = lost_;
  lost_.clear();
  return l;
}

double median_trial_seconds(const store::SweepDir& dir) {
  std::vector<double> s;
  for (const auto& r : dir.read_ledgers())
    if (r.value("event", "") == "done" && r.contains("seconds") && r["seconds"].is_number())
      s.push_back(r["seconds"].get<double>());
  if (s.empty()) return 0.0;
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

void run_simulated_trial(const std::string& id, const nlohmann::json& config, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  store::TrialRecord r;
  r.trial_id = id;
  r.config = config;
  r.manifest = provenance_json();
  r.manifest["trial_id"] = id;
  r.manifest["simulated"] = true;
  r.metrics = {{"simulated_seconds", seconds}};
  store::write_trial(config.at("output").get<std::string>(), r);
}

}  // namespace mpq::sweep
