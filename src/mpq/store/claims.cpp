#include "mpq/store/claims.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include "mpq/util/error.h"
#include "mpq/util/provenance.h"

namespace mpq::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double now_epoch() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// mtime of a file in seconds since the epoch; < 0 if it does not exist.
double mtime_of(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

WorkerIdentity WorkerIdentity::current(const std::string& kind) {
  WorkerIdentity w;
  w.host = host_name();
  w.pid = static_cast<int>(::getpid());
  w.job_id = env("SLURM_JOB_ID");
  w.array_job_id = env("SLURM_ARRAY_JOB_ID");
  w.array_task_id = env("SLURM_ARRAY_TASK_ID");
  const std::string rc = env("SLURM_RESTART_COUNT");
  w.restart_count = rc.empty() ? 0 : std::atoi(rc.c_str());
  std::mt19937_64 rng(static_cast<uint64_t>(now_epoch() * 1e9) ^ static_cast<uint64_t>(w.pid));
  char tag[8];
  std::snprintf(tag, sizeof tag, "%04x", static_cast<unsigned>(rng() & 0xffff));
  std::string slurm;
  if (!w.array_job_id.empty())
    slurm = "slurm-" + w.array_job_id + "_" + w.array_task_id + "-r" +
            std::to_string(w.restart_count) + "-";
  else if (!w.job_id.empty())
    slurm = "slurm-" + w.job_id + "-r" + std::to_string(w.restart_count) + "-";
  w.id = kind + "-" + slurm + w.host + "-" + std::to_string(w.pid) + "-" + tag;
  return w;
}

json WorkerIdentity::to_json() const {
  json j = {{"worker", id}, {"host", host}, {"pid", pid}};
  if (!job_id.empty()) j["slurm_job_id"] = job_id;
  if (!array_job_id.empty()) j["slurm_array_job_id"] = array_job_id;
  if (!array_task_id.empty()) j["slurm_array_task_id"] = array_task_id;
  if (!job_id.empty()) j["slurm_restart_count"] = restart_count;
  return j;
}

ClaimStore::ClaimStore(std::string dir, WorkerIdentity me, double lease_seconds, Clock clock)
    : dir_(std::move(dir)), me_(std::move(me)), lease_(lease_seconds), clock_(std::move(clock)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw InputError(dir_ + ": cannot create claims directory (" + ec.message() + ")");
}

double ClaimStore::now() const {
  return clock_ ? clock_() : now_epoch();
}

bool ClaimStore::touch(const std::string& p) const {
  if (!clock_) return ::utimensat(AT_FDCWD, p.c_str(), nullptr, 0) == 0;
  const double t = clock_();
  timespec ts;
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - static_cast<double>(ts.tv_sec)) * 1e9);
  const timespec times[2] = {ts, ts};
  return ::utimensat(AT_FDCWD, p.c_str(), times, 0) == 0;
}

std::string ClaimStore::path(const std::string& id, int g) const {
  return dir_ + "/" + id + "." + std::to_string(g);
}

ClaimInfo ClaimStore::current(const std::string& id) const {
  ClaimInfo c;
  c.trial = id;
  for (int g = 1;; ++g) {
    const double m = mtime_of(path(id, g));
    if (m < 0) break;
    c.generation = g;
    c.age_seconds = now() - m;
    c.abandoned = m < 2;  // abandon() sets the file's times to 1 s after the epoch
  }
  if (c.generation == 0) return c;
  c.live = c.age_seconds < lease_;
  try {
    std::ifstream in(path(id, c.generation));
    c.holder = json::parse(in);
  } catch (const std::exception&) {
    c.holder = json::object();  // being written, or removed meanwhile
  }
  // A holder on this host whose process is gone is dead now, whatever its lease says (a killed
  // job's trials are taken over at once instead of after the lease).
  if (c.live && c.holder.value("host", "") == me_.host && !me_.host.empty()) {
    const int pid = c.holder.value("pid", 0);
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) c.live = false;
  }
  return c;
}

bool ClaimStore::try_claim(const std::string& id) {
  const ClaimInfo c = current(id);
  if (c.generation > 0 && c.live) return false;
  const int g = c.generation + 1;
  const std::string p = path(id, g);
  // The exclusive create is the arbiter: of all workers that saw the same state, one wins.
  int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw InputError(p + ": cannot create claim (" + std::strerror(errno) + ")");
  }
  json j = me_.to_json();
  j["trial"] = id;
  j["generation"] = g;
  j["claimed"] = utc_now_iso();
  if (g > 1) j["took_over"] = c.holder;
  const std::string text = j.dump() + "\n";
  ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()) || (clock_ && !touch(p))) {
    ::unlink(p.c_str());
    throw InputError(p + ": cannot write claim");
  }
  std::lock_guard<std::mutex> lk(mu_);
  held_[id] = g;
  return true;
}

std::vector<std::string> ClaimStore::heartbeat() {
  std::vector<std::string> lost;
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = held_.begin(); it != held_.end();) {
    const std::string p = path(it->first, it->second);
    // Taken over (a newer generation exists) or removed: the claim is lost.
    if (mtime_of(path(it->first, it->second + 1)) >= 0 || !touch(p)) {
      lost.push_back(it->first);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return lost;
}

int ClaimStore::forget(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = held_.find(id);
  if (it == held_.end()) return 0;
  const int g = it->second;
  held_.erase(it);
  return g;
}

void ClaimStore::release(const std::string& id) {
  const int g = forget(id);
  if (g == 0) return;
  // Our generation and every older one, highest first; never a newer one (not ours).
  if (mtime_of(path(id, g + 1)) >= 0) return;  // taken over meanwhile: the new holder cleans up
  for (int k = g; k >= 1; --k) ::unlink(path(id, k).c_str());
}

void ClaimStore::abandon(const std::string& id) {
  const int g = forget(id);
  if (g == 0) return;
  const timespec epoch[2] = {{1, 0}, {1, 0}};  // access and modification time: 1970
  ::utimensat(AT_FDCWD, path(id, g).c_str(), epoch, 0);
}

void ClaimStore::abandon_all() {
  for (const auto& id : held()) abandon(id);
}

std::vector<std::string> ClaimStore::held() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::string> v;
  for (const auto& [id, g] : held_) v.push_back(id);
  return v;
}

std::vector<ClaimInfo> ClaimStore::list() const {
  std::vector<std::string> trials;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    auto dot = name.rfind('.');
    if (dot == std::string::npos || name.substr(dot + 1) != "1") continue;
    trials.push_back(name.substr(0, dot));
  }
  std::vector<ClaimInfo> out;
  for (const auto& t : trials) {
    auto c = current(t);
    if (c.generation > 0) out.push_back(c);
  }
  return out;
}

}  // namespace mpq::store
