// Progress reporting for long work (training, calibration, evaluation, sweeps).
//
// On a terminal (stderr is a TTY) a single bar is redrawn in place; otherwise (logs, CI, Slurm
// output files) a plain line is printed at most every `kPlainIntervalSeconds` and at the end.
// set_quiet(true) (the CLI's --quiet) silences every bar and info line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mpq {

void set_quiet(bool quiet);
bool is_quiet();

/// Seconds on the steady clock (for differences: timeouts, heartbeats, rates).
inline double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Silences progress and info output of the current thread only while alive (sweep workers run
/// trials quietly while rank 0's scheduler thread keeps its sweep bar).
class ThreadQuiet {
 public:
  ThreadQuiet();
  ~ThreadQuiet();
  ThreadQuiet(const ThreadQuiet&) = delete;
  ThreadQuiet& operator=(const ThreadQuiet&) = delete;

 private:
  bool previous_;
};

/// Prints one informational line to stderr ("mpq: ...") unless quiet.
void info(const std::string& line);
/// Prints one warning line to stderr ("mpq: warning: ..."), also when quiet: something a result
/// leaves out that its reader must know.
void warn(const std::string& line);

class Progress {
 public:
  static constexpr double kPlainIntervalSeconds = 10.0;

  /// @param label  what is being done, e.g. "train resnet20 epoch 1/3"
  /// @param total  number of work units (images, batches, trials); 0 = unknown
  Progress(std::string label, int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Advances by `n` units; `suffix` (e.g. "loss 0.31") is shown after the counter.
  void advance(int64_t n, const std::string& suffix = "");
  /// Prints the final state once (also called by the destructor).
  void finish(const std::string& suffix = "");

 private:
  void draw(bool final_line);

  std::string label_;
  std::string suffix_;
  int64_t total_;
  int64_t done_ = 0;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace mpq
