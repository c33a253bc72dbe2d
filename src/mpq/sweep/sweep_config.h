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

struct SweepRunOptions {
  std::string mode = "trials";  ///< "trials": trial-parallel; "layers": layer-parallel per trial
  int max_attempts = 2;         ///< a trial that failed this many times is not retried
  int threads_per_rank = 0;     ///< 0 = cores / ranks on the node
  /// A claim not renewed for this long is stale and its trial may be taken over (claims.h).
  double lease_seconds = 120;
  std::string results_dir = "results";
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

/// Reads and parses a sweep file (InputError if unreadable, ConfigError if invalid).
SweepSpec load_sweep(const std::string& path);

/// SHA-256 of the canonical sweep document minus its "run" block (which cannot change results):
/// identifies "the same sweep" when resuming under an existing name.
std::string sweep_fingerprint(const nlohmann::json& document);

}  // namespace mpq::sweep
