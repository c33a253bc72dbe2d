#include "mpq/util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace mpq {
namespace {
bool g_quiet = false;
thread_local bool t_quiet = false;

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

void set_quiet(bool quiet) {
  g_quiet = quiet;
}
bool is_quiet() {
  return g_quiet || t_quiet;
}

ThreadQuiet::ThreadQuiet() : previous_(t_quiet) {
  t_quiet = true;
}
ThreadQuiet::~ThreadQuiet() {
  t_quiet = previous_;
}

void info(const std::string& line) {
  if (is_quiet()) return;
  std::fprintf(stderr, "mpq: %s\n", line.c_str());
  std::fflush(stderr);
}

void warn(const std::string& line) {
  std::fprintf(stderr, "mpq: warning: %s\n", line.c_str());
  std::fflush(stderr);
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

void Progress::advance(int64_t n, const std::string& suffix) {
  done_ += n;
  if (!suffix.empty()) suffix_ = suffix;
  if (is_quiet() || finished_) return;
  auto now = std::chrono::steady_clock::now();
  double since = seconds_between(last_draw_, now);
  // Redraw a TTY bar ~10 times a second; plain output every kPlainIntervalSeconds.
  if ((tty_ && since >= 0.1) || (!tty_ && since >= kPlainIntervalSeconds)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& suffix) {
  if (finished_) return;
  finished_ = true;
  if (!suffix.empty()) suffix_ = suffix;
  if (!is_quiet()) draw(true);
}

void Progress::draw(bool final_line) {
  double elapsed = seconds_between(start_, std::chrono::steady_clock::now());
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  char counter[128];
  if (total_ > 0) {
    double frac = static_cast<double>(done_) / static_cast<double>(total_);
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
    std::snprintf(counter, sizeof counter, "%lld/%lld %5.1f%% %.1fs%s",
                  static_cast<long long>(done_), static_cast<long long>(total_), 100.0 * frac,
                  final_line ? elapsed : eta, final_line ? "" : " left");
    if (tty_) {
      constexpr int kWidth = 24;
      int fill = static_cast<int>(frac * kWidth + 0.5);
      if (fill > kWidth) fill = kWidth;
      std::string bar(static_cast<size_t>(fill), '#');
      bar.resize(kWidth, '.');
      std::fprintf(stderr, "\r\033[Kmpq: %s [%s] %s %s", label_.c_str(), bar.c_str(), counter,
                   suffix_.c_str());
      if (final_line) std::fputc('\n', stderr);
      std::fflush(stderr);
      return;
    }
  } else {
    std::snprintf(counter, sizeof counter, "%lld %.1fs", static_cast<long long>(done_), elapsed);
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[Kmpq: %s %s %s%s", label_.c_str(), counter, suffix_.c_str(),
                 final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "mpq: %s %s %s\n", label_.c_str(), counter, suffix_.c_str());
  }
  std::fflush(stderr);
}

}  // namespace mpq
