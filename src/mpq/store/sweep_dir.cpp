#include "mpq/store/sweep_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"

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
  }
  return "?";
}

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream o(tmp, std::ios::trunc);
    if (!o) throw InputError(path + ": cannot write");
    o << text;
    o.flush();
    if (!o) throw InputError(path + ": write failed");
  }
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError(path + ": cannot rename into place");
  }
}

void SweepDir::init(const json& doc, const std::string& fingerprint, bool force) const {
  std::error_code ec;
  fs::create_directories(trials_dir(), ec);
  if (ec) throw InputError(dir_ + ": cannot create sweep directory (" + ec.message() + ")");
  fs::create_directories(cache_dir(), ec);
  std::string meta = dir_ + "/sweep.json";
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

SweepLock::~SweepLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

std::unique_ptr<SweepLock> SweepDir::lock() const {
  std::string path = dir_ + "/.lock";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(path + ": cannot create lock file");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw ConfigError(dir_ + " is in use by another `mpq sweep run`; wait for it to finish");
  }
  auto lock = std::make_unique<SweepLock>(fd);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(trials_dir(), ec))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) fs::remove(e.path(), ec);
  return lock;
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

int SweepDir::max_attempts() const {
  const std::string meta = dir_ + "/sweep.json";
  std::ifstream in(meta);
  if (!in) return 2;
  try {
    json j = json::parse(in);
    return j.at("sweep").value("run", json::object()).value("max_attempts", 2);
  } catch (const std::exception& e) {
    throw InputError(meta + ": unreadable sweep record (" + std::string(e.what()) +
                     "); restore it or rerun the sweep with --force");
  }
}

SweepStatus SweepDir::status(int max_attempts) const {
  SweepStatus st;
  auto records = read_ledger(ledger_path(), &st.ledger_skipped);
  st.history = fold_ledger(records);
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
      if (failed >= max_attempts)
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
    }
    st.trials.emplace_back(p, s);
  }
  return st;
}

}  // namespace mpq::store
