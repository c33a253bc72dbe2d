// Error handling for mpq: two tiers and a boundary (see docs/cli.md, "Exit codes").
//
// - Internal invariants (bugs in mpq itself) use MPQ_ASSERT, which prints file:line and aborts.
// - Problems with what the user gave us throw one of the exceptions below. Their message is a
//   single line that names the input (file path, JSON pointer) and says what was expected.
// - Process boundaries (tools/mpq.cpp `main`, the sweep worker loop) catch them: `main` prints
//   "mpq: <message>" to stderr and exits with exit_code(); a sweep records the trial as FAILED.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mpq {

/// A request that is wrong in itself and can be rejected before any work starts: bad command
/// line, malformed or invalid JSON config, out-of-range values, an output directory that does
/// not exist. Exit code 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file or data problem found while working: missing/unreadable model, not a TorchScript
/// archive, truncated dataset, corrupt result file, HDF5 write failure. Exit code 1.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Exit codes used by the CLI.
constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line,
                                     const std::string& msg) {
  std::fprintf(stderr, "mpq: internal error at %s:%d: %s %s\n", file, line, expr, msg.c_str());
  std::abort();
}

}  // namespace mpq

/// Internal invariant: aborts with file/line if `cond` is false. Never use for user input.
#define MPQ_ASSERT(cond, msg)                                          \
  do {                                                                 \
    if (!(cond)) ::mpq::assert_fail(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
