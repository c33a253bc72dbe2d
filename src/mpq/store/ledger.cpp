#include "mpq/store/ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "mpq/util/error.h"
#include "mpq/util/provenance.h"

namespace mpq::store {
using nlohmann::json;

Ledger::Ledger(const std::string& path, json common) : path_(path), common_(std::move(common)) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw InputError(path + ": cannot open ledger for appending (" + std::strerror(errno) + ")");
}

Ledger::~Ledger() {
  if (fd_ >= 0) ::close(fd_);
}

void Ledger::append(json record) {
  for (const auto& [k, v] : common_.items())
    if (!record.contains(k)) record[k] = v;
  record["time"] = utc_now_iso();
  std::string line = record.dump() + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError(path_ + ": cannot append to ledger (" + std::strerror(errno) + ")");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  ::fsync(fd_);
}

std::vector<json> read_ledger(const std::string& path, int* skipped) {
  std::vector<json> out;
  int bad = 0;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.is_object())
        out.push_back(std::move(j));
      else
        ++bad;
    } catch (const json::exception&) {
      ++bad;  // a line cut short by a crash
    }
  }
  if (skipped) *skipped = bad;
  return out;
}

std::map<std::string, TrialHistory> fold_ledger(const std::vector<json>& records) {
  std::map<std::string, TrialHistory> h;
  for (const auto& r : records) {
    if (!r.contains("trial") || !r["trial"].is_string()) continue;
    auto& t = h[r["trial"].get<std::string>()];
    std::string ev = r.value("event", "");
    if (ev == "started")
      ++t.started;
    else if (ev == "done")
      ++t.done;
    else if (ev == "failed") {
      ++t.failed;
      t.last_message = r.value("message", "");
    }
  }
  return h;
}

}  // namespace mpq::store
