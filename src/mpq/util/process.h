// Running external programs (sbatch, squeue, scontrol, scancel) without a shell: arguments are
// passed as they are (no quoting issues), output is captured.
#pragma once

#include <string>
#include <vector>

namespace mpq {

struct ProgramResult {
  int exit_code = -1;  ///< -1: could not start; 128 + n: killed by signal n
  std::string out, err;
};

/// Runs argv[0] (looked up in PATH) with the given arguments and waits for it.
ProgramResult run_program(const std::vector<std::string>& argv);

/// The absolute path of `name` found in PATH ("" if none).
std::string find_in_path(const std::string& name);

/// The absolute path of the running executable (/proc/self/exe).
std::string self_executable();

}  // namespace mpq
