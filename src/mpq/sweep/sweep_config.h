// Sweep configs: a base trial plus axes, expanded into trials (docs/sweeps.md).
//
//   {
//     "name": "rtn-bits",                         results go to <results_dir>/<name>/
//     "base": { ...partial trial config... },
//     "axes": [
//       {"key": "weights.bits", "values": [8, 4, 3, 2]},                     cartesian product
//       {"zip": [{"key": "weights.method", "values": ["rtn", "multipoint"]},
//                {"key": "label", "values": ["RTN", "MP"]}]},                zipped lists
//       {"variants": [{"label": "RTN"}, {"weights": {"method": "multipoint"}}]}   merged objects
//     ],
//     "seeds": [0, 1, 2],          each seed sets /seed and /calibration/seed (innermost axis)
//     "run": {"mode": "trials", "max_attempts": 2, "threads_per_rank": 0, "lease_seconds": 120,
//             "results_dir": "results"}
//   }
//
// Expansion order is deterministic: axes in order (the first varies slowest), seeds innermost.
// validate_sweep() reports every problem with its JSON pointer in the sweep file before any
// trial runs: unknown top-level or trial keys, empty axes, wrong types, out-of-range values,
// zipped lists of different lengths, duplicate trials.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq::sweep {

/// /run/mode: trial-parallel (each rank runs whole trials) or layer-parallel (all ranks take part
/// in every trial).
enum class RunMode { kTrials, kLayers };
const char* run_mode_name(RunMode m);  ///< "trials" | "layers" (the JSON values)

/// /run/fp_check: "error" fails a full-split mismatch, "warn" only reports it, "off" skips it.
enum class FpCheckMode { kError, kWarn, kOff };

struct SweepRunOptions {
  RunMode mode = RunMode::kTrials;
  int max_attempts = 2;      ///< a trial that failed this many times is not retried
  int threads_per_rank = 0;  ///< 0 = cores / ranks on the node
  /// A claim not renewed for this long is stale and its trial may be taken over (claims.h).
  double lease_seconds = 120;
  std::string results_dir = "results";
  FpCheckMode fp_check = FpCheckMode::kError;  ///< FP sanity check at preparation (fp_check.h)
  double fp_check_tolerance = 0.1;             ///< points
  /// The labelled samples the FP check evaluates a model on when the sweep's data has no labels
  /// (fidelity datasets such as photos; fp_check.h).
  std::string fp_check_samples = "results/data/imagenet_samples";
};

struct ExpandedTrial {
  int index = 0;            ///< position in expansion order
  nlohmann::json config;    ///< resolved trial config (no /output yet)
  nlohmann::json settings;  ///< what the axes set for this trial, flat {"weights.bits": 4, ...}
};

struct SweepSpec {
  std::string name;
  std::string source;       ///< file the spec came from (for messages)
  nlohmann::json document;  ///< the sweep config as given
  SweepRunOptions run;
  std::vector<ExpandedTrial> trials;
};

/// Parses, validates and expands a sweep document. Throws ConfigError listing every problem
/// ("<source>: <pointer>: <message>", one per line). Does not touch models or data.
SweepSpec parse_sweep(const nlohmann::json& document, const std::string& source);

/// Command-line changes to a sweep file, applied before it is parsed:
///  - `vars`: "NAME=VALUE" for the sweep's variables. A sweep may declare
///    "vars": {"NAME": "default", ...}; every "${NAME}" in its string values is replaced by the
///    value (an empty default must be given on the command line). Used for paths that differ
///    per cluster: "${models}/resnet18.pt", "${imagenet}".
///  - `sets`: "key.path=value" overrides of the base trial config (every trial), e.g.
///    "data.root=/data/imagenet" (the value parses as JSON when it can).
/// The resolved document (what the sweep directory records) has them applied.
struct SweepOverrides {
  std::vector<std::string> vars;
  std::vector<std::string> sets;
  bool ignore_fp_check = false;  ///< sets run.fp_check to "warn" (fp_check.h)
};

/// Reads and parses a sweep file (InputError if unreadable, ConfigError if invalid).
SweepSpec load_sweep(const std::string& path, const SweepOverrides& overrides = {});

/// Applies `overrides` to a sweep document (ConfigError naming the variable or key if they do not
/// fit: an unknown variable, a ${NAME} without a value, a malformed assignment).
nlohmann::json resolve_sweep_document(nlohmann::json doc, const SweepOverrides& overrides,
                                      const std::string& source);

/// SHA-256 of the canonical sweep document minus its "run" block (which cannot change results):
/// identifies "the same sweep" when resuming under an existing name.
std::string sweep_fingerprint(const nlohmann::json& document);

}  // namespace mpq::sweep
