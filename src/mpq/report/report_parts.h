// The pieces `mpq report` (report.h) is assembled from, shared by its three files:
//   report_parts.cpp     the trials' settings seen as method / context / knob, statistics for the
//                        figures, the line figure
//   sweep_figures.cpp    one figure family per function over all trials: metric against overhead
//                        (tradeoff-NN) and against weight bits (bits-NN)
//   layer_figures.cpp    the per-layer figures of one representative multipoint trial per panel
//                        (errors-NN, points-NN, points-layers-NN, layer-error-NN, budget-NN)
//   report.cpp           reads the trials, asks aggregate.h for the tables and assembles the
//                        document (document.h)
// Internal to report/: nothing outside it includes this header.
#pragma once

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/report/figures.h"
#include "mpq/report/report.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"

namespace mpq::report::parts {

using nlohmann::json;

/// A done trial as the figures see it.
struct ReportTrial {
  store::PlannedTrial plan;
  json metrics, manifest;
  std::vector<store::LayerRecord> layers;  // attrs + points_per_channel
  json key;                                // settings without seed (model seeds pooled if asked)
  int64_t model_seed = -1;
  int64_t seed = 0;
  size_t order = 0;  // plan order
};

/// What the figures plot and how (from the report options and the sweep's headline).
struct FigureContext {
  std::string metric;     ///< y axis
  std::string fp_metric;  ///< "fp_<metric>" if the trials record it, else ""
  double scale = 1;       ///< 100 for a percent metric
  Overhead overhead = Overhead::kMacs;
  bool pool_model_seeds = false;
};

/// A figure's name and its caption in the document.
struct Captioned {
  std::string name, caption;
};

/// The per-layer figures of one multipoint trial.
struct Detail {
  std::string title;       // for the report
  std::string plot_title;  // two short lines for the figures
  std::vector<std::string> names;
  std::vector<std::string> captions;
};

// ---- settings ----------------------------------------------------------------------------------

/// Settings that choose the method and its hyperparameters (one line of a figure per method).
bool is_method_key(const std::string& k);
/// Method settings that move a method along the overhead axis (points of one line).
bool is_knob(const std::string& k);
/// "model.path" -> "model", "weights.bits" -> "W bits", otherwise the last dotted component.
std::string short_key(const std::string& k);
/// "gptq" -> "GPTQ", ...
std::string method_display(const std::string& m);
/// The trial config's weight method is multipoint.
bool is_multipoint(const json& config);
/// A multipoint trial config that allocates its budget by output error (policy "budget").
bool allocates_by_output_error(const json& config);
/// The settings without the seed; model.path without "@seed=N" if `pool` (its N in *model_seed).
json normalized_key(const json& settings, bool pool, int64_t* model_seed);
/// The settings of `key` for which keep(k) != negate.
json subset(const json& key, bool (*keep)(const std::string&), bool negate);
/// "model resnet20, W bits 4" (or "all trials").
std::string title_of(const json& context);
/// j[k] if it is a number, else NaN.
double number(const json& j, const std::string& k);

/// The metric of --overhead (extra_macs_pct, ...); ConfigError for an unknown name.
std::string overhead_metric(Overhead overhead);
/// Its axis label.
std::string overhead_label(Overhead overhead);

// ---- statistics and figures --------------------------------------------------------------------

struct MeanStd {
  double mean = NAN, std = 0;
  int n = 0;
};
/// The figures' view of the shared statistics (statistics.h): no error bar below two observations.
MeanStd mean_std(const std::vector<double>& xs);

/// Ordered map keyed by a JSON dump, remembering first-seen order.
template <typename V>
struct Ordered {
  std::vector<std::string> order;
  std::map<std::string, V> items;
  V& at(const std::string& k) {
    if (!items.count(k)) order.push_back(k);
    return items[k];
  }
};

struct Series {  // one line of a figure: points (x, y) with spread
  std::string name;
  struct Point {
    std::string label;
    MeanStd x, y;
  };
  std::vector<Point> points;
};

/// Line figure from series: CSV line,label,x,x_std,y,y_std,n,fp; lines with error bars. A
/// percentage y axis autoscales within [0, 100]: mean - std of a collapsed method can be negative.
Figure line_figure(const std::string& name, const std::string& title, const std::string& xlabel,
                   const std::string& ylabel, const std::vector<Series>& series, double fp,
                   const std::string& fp_label, bool integer_x, bool percent_y);

// ---- figure families ---------------------------------------------------------------------------

/// tradeoff-NN: the metric against overhead, one figure per panel (the non-method settings) where
/// some method has overhead. Appends the figures; returns their captions.
std::vector<Captioned> tradeoff_figures(const std::vector<ReportTrial>& trials,
                                        const FigureContext& c, std::vector<Figure>* figures);

/// bits-NN: the metric against weight bits, one figure per panel with at least two bit widths.
std::vector<Captioned> bits_figures(const std::vector<ReportTrial>& trials, const FigureContext& c,
                                    std::vector<Figure>* figures);

/// The bits of the per-layer figures: `requested` if not 0, else 4 if a multipoint trial has it,
/// else the lowest multipoint bits (0 if there is no multipoint trial).
int detail_bits(const std::vector<ReportTrial>& trials, int requested);

/// The per-layer figures of one representative multipoint trial per panel at `bits` (output-error
/// allocation, the budget nearest 10%, the lowest seeds), read from the trial files of `dir`.
std::vector<Detail> layer_figures(const store::SweepDir& dir,
                                  const std::vector<ReportTrial>& trials, int bits,
                                  std::vector<Figure>* figures);

}  // namespace mpq::report::parts
