// `mpq report`: the figures and tables a paper needs, from a sweep's trial files
// (docs/report.md). Writes <sweep>/report/: report.md (GitHub/GitLab), report.html (the same
// content, figures beside it), and every figure as PNG + SVG with the CSV it was drawn from and
// its gnuplot script (figures.h). Tables come from aggregate.h (also written to aggregate/,
// LaTeX included).
//
// Figures, each only where the sweep has the data for it:
//   tradeoff-NN     headline metric against overhead (extra MACs / channels / weight bits), one
//                   line per method (multipoint budgets, OCS expand ratios, bit allocation on
//                   one axis), error bars over seeds, the FP model as a reference line; one
//                   figure per combination of the other settings (model, bits, granularity, ...)
//   bits-NN         headline metric against weight bits, one line per method (label)
//   errors-NN       relative weight and output error against the number of points, per layer
//                   and for the network (from the trial's per-point error tables)
//   points-NN       points per channel over the network (the paper's "most channels need 1-2")
//   points-layers-NN  the same per layer
//   layer-error-NN  per-layer output error with one point vs after allocation
//   budget-NN       where the budget went: share of extra points vs share of MACs per layer
// The last five are drawn for one representative multipoint trial per panel (at the detail
// bits): output-error allocation, the budget nearest 10%, the lowest seeds.
#pragma once

#include <string>
#include <vector>

namespace mpq::report {

/// The x axis of the trade-off figures: extra MACs, output channels or weight bits (percent).
enum class Overhead { kMacs, kChannels, kWeightBits };
/// "macs" | "channels" | "weight_bits" (--overhead); ConfigError naming the option otherwise.
Overhead parse_overhead(const std::string& name);

struct ReportOptions {
  Overhead overhead = Overhead::kMacs;  ///< x axis of the trade-off
  std::string metric;                   ///< y axis ("" = top1, or map_voc07 for detection)
  bool pool_model_seeds = false;        ///< aggregate.h: error bars over training seeds too
  int detail_bits = 0;  ///< bits of the per-layer figures (0: 4 if present, else lowest)
};

struct ReportResult {
  std::string dir;                   ///< <sweep>/report
  std::string markdown, html;        ///< paths of report.md, report.html
  std::vector<std::string> figures;  ///< figure names (NAME.png/.svg/.csv/.gp exist for each)
};

/// Writes the report of the sweep in `sweep_dir`. Throws InputError if it is not a sweep
/// directory, has no finished trial, or gnuplot fails; ConfigError for a bad option (unknown
/// overhead or metric).
ReportResult write_report(const std::string& sweep_dir, const ReportOptions& options);

}  // namespace mpq::report
