#include "mpq/store/sweep_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "mpq/util/provenance.h"

namespace mpq::store {
namespace fs = std::filesystem;
using nlohmann::json;

const char* trial_state_name(TrialState s) {
  switch (s) {
    case TrialState::kDone:
      return "done";
    case TrialState::kFailed:
      return "failed";
    case TrialState::kGaveUp:
      return "failed (gave up)";
    case TrialState::kPending:
      return "pending";
    case TrialState::kRunning:
      return "running";
  }
  return "?";
}

namespace {
// Whether a temporary file next to the sweep's own files (sweep.json, plan.json,
// fp_check.json, ...) was left by a writer that no longer runs: written by a process of this
// host that is gone, or untouched for an hour (these files take milliseconds to write).
bool stale_top_temp(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  if (name.rfind(".tmp.") == std::string::npos) return false;
  std::error_code ec;
  const auto age = fs::file_time_type::clock::now() - fs::last_write_time(e.path(), ec);
  if (!ec && age > std::chrono::hours(1)) return true;
  return temp_writer_is_dead(name);
}
}  // namespace

void SweepDir::init(const json& doc, const std::string& fingerprint, bool force) const {
  std::error_code ec;
  fs::create_directories(trials_dir(), ec);
  if (ec) throw InputError(dir_ + ": cannot create sweep directory (" + ec.message() + ")");
  fs::create_directories(cache_dir(), ec);
  fs::create_directories(ledgers_dir(), ec);
  fs::create_directories(claims_dir(), ec);
  const std::string meta = sweep_record_path();
  if (fs::exists(meta) && !force) {
    json old;
    try {
      std::ifstream in(meta);
      old = json::parse(in);
    } catch (const std::exception&) {
      throw InputError(meta + ": unreadable; remove it or run with --force");
    }
    if (old.value("fingerprint", "") != fingerprint)
      throw ConfigError(dir_ + " already holds a sweep with a different config (fingerprint " +
                        old.value("fingerprint", "?").substr(0, 12) + " vs " +
                        fingerprint.substr(0, 12) +
                        "); give the sweep a new name, or pass --force to reuse the directory");
    return;
  }
  write_file_atomic(meta, json{{"fingerprint", fingerprint}, {"sweep", doc}}.dump(2) + "\n");
}

int SweepDir::clean_stale_temps(const ClaimStore& claims) const {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(trials_dir(), ec)) {
    const std::string name = e.path().filename().string();
    const auto at = name.find(".h5.tmp.");
    if (at == std::string::npos) continue;
    // A writer holds a live claim on its trial until the file is renamed into place.
    if (claims.current(name.substr(0, at)).live) continue;
    if (fs::remove(e.path(), ec)) ++removed;
  }
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file() && stale_top_temp(e) && fs::remove(e.path(), ec)) ++removed;
  return removed;
}

std::vector<json> SweepDir::read_ledgers(int* skipped) const {
  int bad = 0, b = 0;
  auto all = read_ledger(legacy_ledger_path(), &b);
  bad += b;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ledgers_dir(), ec))
    if (e.path().extension() == ".jsonl") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto part = read_ledger(f, &b);
    bad += b;
    all.insert(all.end(), part.begin(), part.end());
  }
  // Merge by time (ISO-8601 UTC strings sort chronologically), stable per file.
  std::stable_sort(all.begin(), all.end(), [](const json& x, const json& y) {
    return x.value("time", "") < y.value("time", "");
  });
  if (skipped) *skipped = bad;
  return all;
}

void SweepDir::write_plan(const std::vector<PlannedTrial>& plan) const {
  json arr = json::array();
  for (const auto& p : plan)
    arr.push_back({{"id", p.id}, {"settings", p.settings}, {"config", p.config}});
  write_file_atomic(plan_path(), arr.dump(1) + "\n");
}

std::vector<PlannedTrial> SweepDir::read_plan() const {
  std::ifstream in(plan_path());
  if (!in)
    throw InputError(dir_ + ": not a sweep directory (no plan.json; run `mpq sweep run` first)");
  json arr;
  try {
    arr = json::parse(in);
  } catch (const std::exception&) {
    throw InputError(plan_path() + ": not valid JSON");
  }
  std::vector<PlannedTrial> plan;
  for (const auto& e : arr)
    plan.push_back({e.at("id").get<std::string>(), e.at("settings"), e.at("config")});
  return plan;
}

json SweepDir::read_sweep_document() const {
  const std::string meta = sweep_record_path();
  std::ifstream in(meta);
  if (!in) return json::object();
  try {
    json j = json::parse(in);
    const json& doc = j.at("sweep");
    if (!doc.is_object()) throw std::runtime_error("\"sweep\" is not an object");
    return doc;
  } catch (const std::exception& e) {
    throw InputError(meta + ": unreadable sweep record (" + std::string(e.what()) +
                     "); restore it or rerun the sweep with --force");
  }
}

json SweepDir::read_fp_checks() const {
  const std::string path = fp_check_path();
  std::ifstream in(path);
  if (!in) return json::array();
  json checks;
  try {
    checks = json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(path + ": unreadable FP check record (" + std::string(e.what()) +
                     "); rerun `mpq sweep prepare` to write it again");
  }
  if (!checks.is_array())
    throw InputError(path + ": expected a JSON array of FP checks, got " +
                     std::string(checks.type_name()));
  return checks;
}

int SweepDir::max_attempts() const {
  return read_sweep_document().value("run", json::object()).value("max_attempts", 2);
}

double SweepDir::lease_seconds() const {
  return read_sweep_document()
      .value("run", json::object())
      .value("lease_seconds", kDefaultLeaseSeconds);
}

int SweepDir::set_aside_invalid_trials(const std::vector<PlannedTrial>& plan) const {
  int moved = 0;
  for (const auto& p : plan) {
    const std::string path = trial_path(p.id);
    if (!fs::exists(path) || validate_trial(path)) continue;
    std::string aside = path + ".invalid";
    for (int k = 1; fs::exists(aside); ++k) aside = path + ".invalid." + std::to_string(k);
    std::error_code ec;
    fs::rename(path, aside, ec);
    if (ec)
      throw InputError(path + ": invalid trial file, and it cannot be moved aside (" +
                       ec.message() + ")");
    ++moved;
  }
  return moved;
}

SweepStatus SweepDir::status(int max_attempts) const {
  SweepStatus st;
  st.history = fold_ledger(read_ledgers(&st.ledger_skipped));
  WorkerIdentity reader;
  reader.host = host_name();
  ClaimStore claims(claims_dir(), reader, lease_seconds());
  std::map<std::string, bool> live;
  for (const auto& c : claims.list()) {
    live[c.trial] = c.live;
    st.claims.push_back(c);
  }
  for (const auto& p : read_plan()) {
    TrialState s = TrialState::kPending;
    std::string path = trial_path(p.id);
    if (fs::exists(path)) {
      if (validate_trial(path))
        s = TrialState::kDone;
      else
        ++st.invalid_files;
    }
    if (s != TrialState::kDone) {
      auto it = st.history.find(p.id);
      int failed = it == st.history.end() ? 0 : it->second.failed;
      if (live.count(p.id) && live[p.id])
        s = TrialState::kRunning;
      else if (failed >= max_attempts)
        s = TrialState::kGaveUp;
      else if (failed > 0)
        s = TrialState::kFailed;
    }
    switch (s) {
      case TrialState::kDone:
        ++st.done;
        break;
      case TrialState::kFailed:
        ++st.failed;
        break;
      case TrialState::kGaveUp:
        ++st.gave_up;
        break;
      case TrialState::kPending:
        ++st.pending;
        break;
      case TrialState::kRunning:
        ++st.running;
        break;
    }
    st.trials.emplace_back(p, s);
  }
  return st;
}

}  // namespace mpq::store
