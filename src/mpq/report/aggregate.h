// Aggregating a sweep's trial files into the tables a paper needs (docs/sweeps.md).
//
// Rows are grouped by every axis setting except the seed; each metric is reported as
// mean ± sample standard deviation (ddof = 1; "-" when n = 1) over the seeds present, with n and
// the planned seeds that have no result ("missing"). Row order is the expansion order of the
// sweep, so tables are deterministic. Failed trials go to a side table with their last message.
// A pivot turns chosen settings into rows and columns (model x method, columns = bits).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/eval/metrics.h"
#include "mpq/report/table.h"

namespace mpq::report {

struct PivotSpec {
  std::vector<std::string> rows;  ///< setting keys, e.g. {"model.path", "label"}
  std::string column;             ///< setting key(s), comma-separated: "weights.bits" or
                                  ///< "weights.bits,activations.bits" (one column per combination)
  std::string value;              ///< metric ("" = the sweep's headline, eval/metrics.h)
};

struct AggregateOptions {
  /// Metrics of the summary table ({} = the task's, headline first: classification top1,
  /// agreement, kl, extra_channels_pct; detection map_voc07 (or map_voc12 with
  /// eval.voc_metric=voc12), the other mAP, fidelity_map, extra_channels_pct).
  std::vector<std::string> metrics;
  std::vector<PivotSpec> pivots;
  /// Treat independently trained default models (model.path "default:<arch>@seed=<n>") as
  /// replicates of "default:<arch>", like calibration seeds: rows pool model seeds x seeds, and
  /// the summary splits the headline metric's spread into "sd models" (of the per-model means)
  /// and "sd calib" (within a model, over calibration seeds).
  bool pool_model_seeds = false;
  /// Also write <sweep>/aggregate/{summary,pivot*}.tex (booktabs) and fill AggregateResult::latex.
  bool latex = false;
  /// LaTeX: the best value of every metric column in bold (higher is better for accuracies,
  /// lower for errors; overhead columns are not marked).
  bool bold_best = false;
  bool write_files =
      true;  ///< write <sweep>/aggregate/{summary,trials,failed,pivot*}.{md,csv}, trials.h5
};

struct AggregateResult {
  Table summary{{}};
  Table failed{{}};
  std::vector<Table> pivots;
  Table trials{{}};  ///< one row per done trial (settings, seed, id, every metric)
  int done = 0, failed_count = 0, pending = 0;  ///< pending: not finished (pending or running)
  std::string markdown;                         ///< everything above, ready to print
  std::string latex;  ///< summary and pivots as LaTeX tables (with AggregateOptions::latex)
  /// The trials' task and headline (from their manifests; eval/metrics.h): top1, map_voc07 or
  /// map_voc12.
  eval::TaskMetrics task;
  std::string headline;                   ///< task.headline
  std::vector<PivotSpec> pivot_specs;     ///< the pivots, metric resolved
  std::vector<std::string> setting_keys;  ///< setting keys in first-seen order (no seed)
};

/// "default:<arch>@seed=<n>" -> ("default:<arch>", n); "default:<arch>" -> (itself, 0); any other
/// path -> (itself, -1).
std::pair<std::string, int64_t> split_model_seed(const std::string& model_path);

/// Parses "ROWS:COLUMN[:METRIC]" (ROWS comma-separated setting keys), e.g.
/// "model.path,label:weights.bits:top1". ConfigError if malformed.
PivotSpec parse_pivot(const std::string& text);

/// Aggregates the sweep in `sweep_dir`. Throws InputError if it is not a sweep directory,
/// ConfigError if a pivot names an unknown setting, or a metric (summary or pivot) is not one
/// the sweep's trials recorded.
AggregateResult aggregate_sweep(const std::string& sweep_dir, const AggregateOptions& options);

/// Short display form of a setting value: "default:resnet20" -> "resnet20",
/// "/a/b/model.pt" -> "model", numbers and strings as they are.
std::string display_value(const std::string& key, const nlohmann::json& v);

}  // namespace mpq::report
