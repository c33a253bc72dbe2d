// The CLI's verbs: one file per verb (its options, help text, examples and run function), all
// registered by main (src/tools/mpq.cpp), which only builds the app, dispatches, and maps
// exceptions to exit codes once (report_error). Exit codes: docs/cli.md.
#pragma once

#include <CLI/CLI.hpp>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/sweep/sweep_config.h"

namespace mpq::cli {

/// One runnable (leaf) command: `mpq quantize`, `mpq sweep run`, ...
class Verb {
 public:
  explicit Verb(CLI::App* command) : command_(command) {}
  virtual ~Verb() = default;
  /// True if the command line chose this verb.
  bool chosen() const { return command_->parsed(); }
  /// Runs the verb; returns the exit code. Exceptions go to report_error (main).
  /// argc/argv are the process's (MPI initialization needs them).
  virtual int run(int* argc, char*** argv) = 0;

 protected:
  CLI::App* command_;
};

using Verbs = std::vector<std::unique_ptr<Verb>>;

// Registration, in the order `mpq --help` lists them.
void add_train(CLI::App& app, Verbs& verbs);
void add_inspect(CLI::App& app, Verbs& verbs);
void add_eval(CLI::App& app, Verbs& verbs);
void add_data(CLI::App& app, Verbs& verbs);  // data export, data make-voc
void add_quantize(CLI::App& app, Verbs& verbs);
void add_sweep(CLI::App& app, Verbs& verbs);  // sweep plan, run, prepare, work
void add_slurm(CLI::App& app, Verbs& verbs);  // slurm submit, cancel
void add_status(CLI::App& app, Verbs& verbs);
void add_aggregate(CLI::App& app, Verbs& verbs);
void add_report(CLI::App& app, Verbs& verbs);
void add_score_detections(CLI::App& app, Verbs& verbs);
void add_schema(CLI::App& app, Verbs& verbs);

// ---- shared by the verbs ---------------------------------------------------------------------

/// Options every config-driven verb shares: --config FILE and repeated --set key=value.
struct ConfigArgs {
  std::string config_path;
  std::vector<std::string> sets;
};
void add_config_args(CLI::App* app, ConfigArgs& a);

/// --var NAME=VALUE, --set key=value and --ignore-fp-check of the sweep verbs.
void add_sweep_overrides(CLI::App* app, sweep::SweepOverrides& o);

/// Loads --config, then applies --set overrides, then the verb's explicit flags (JSON pointer ->
/// value).
nlohmann::json user_config(const ConfigArgs& a, const nlohmann::json& flags);

/// "command line" or the --config file, for messages.
std::string source_name(const ConfigArgs& a);

/// Prints the exception as one line ("mpq: <message>") and returns the exit code of its kind
/// (ConfigError 2, everything else 1).
int report_error(std::exception_ptr error);

}  // namespace mpq::cli
