#include "mpq/report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "mpq/eval/metrics.h"
#include "mpq/report/aggregate.h"
#include "mpq/report/document.h"
#include "mpq/report/figures.h"
#include "mpq/report/report_parts.h"
#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"

namespace mpq::report {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace parts;  // NOLINT(build/namespaces): report's own pieces

namespace {

/// The done trials of the sweep with the summaries of their files; the numeric metric names in
/// *metric_names. InputError if there is none.
std::vector<ReportTrial> read_done_trials(const store::SweepDir& dir, const std::string& sweep_dir,
                                          bool pool_model_seeds,
                                          std::set<std::string>* metric_names) {
  auto status = dir.status(dir.max_attempts());
  std::vector<ReportTrial> trials;
  for (size_t i = 0; i < status.trials.size(); ++i) {
    const auto& [p, st] = status.trials[i];
    if (st != store::TrialState::kDone) continue;
    auto rec = store::read_trial(dir.trial_path(p.id), store::TrialParts::kSummary);
    ReportTrial t;
    t.plan = p;
    t.metrics = rec.metrics;
    t.manifest = rec.manifest;
    t.layers = std::move(rec.layers);
    t.key = normalized_key(p.settings, pool_model_seeds, &t.model_seed);
    t.seed = p.config.value("seed", int64_t{0});
    t.order = i;
    for (const auto& [m, v] : rec.metrics.items())
      if (v.is_number()) metric_names->insert(m);
    trials.push_back(std::move(t));
  }
  if (trials.empty())
    throw InputError(sweep_dir + ": no finished trials to report on (see mpq status " + sweep_dir +
                     ")");
  return trials;
}

/// What the figures plot: --metric (default: the sweep's headline), checked against the trials'.
FigureContext figure_context(const std::vector<ReportTrial>& trials,
                             const std::set<std::string>& metric_names,
                             const std::string& sweep_dir, const ReportOptions& o) {
  std::vector<eval::TaskMetrics> trial_tasks;
  for (const auto& t : trials) trial_tasks.push_back(eval::trial_task_metrics(t.manifest));
  const std::string headline = eval::common_task_metrics(trial_tasks, sweep_dir).headline;
  FigureContext c;
  c.metric = o.metric.empty() ? headline : o.metric;
  if (!metric_names.count(c.metric)) {
    std::string list;
    for (const auto& m : metric_names) list += (list.empty() ? "" : ", ") + m;
    throw ConfigError("--metric: '" + c.metric +
                      "' is not a metric of this sweep (metrics: " + list + ")");
  }
  c.scale = eval::is_percent_metric(c.metric) ? 100.0 : 1.0;
  c.fp_metric = metric_names.count("fp_" + c.metric) ? "fp_" + c.metric : "";
  c.overhead = o.overhead;
  c.pool_model_seeds = o.pool_model_seeds;
  return c;
}

/// The sweep's tables through aggregate (also written to aggregate/, with LaTeX): the summary and,
/// if the sweep varies bits and something else, the metric pivoted by bits.
AggregateResult report_tables(const std::string& sweep_dir, const std::vector<std::string>& keys,
                              const std::string& metric, bool pool_model_seeds) {
  AggregateOptions ao;
  ao.pool_model_seeds = pool_model_seeds;
  ao.latex = true;
  ao.bold_best = true;
  std::vector<std::string> bits_keys, row_keys;
  const bool labelled = std::find(keys.begin(), keys.end(), "label") != keys.end();
  for (const char* b : {"weights.bits", "activations.bits"})
    if (std::find(keys.begin(), keys.end(), b) != keys.end()) bits_keys.push_back(b);
  for (const auto& key : keys)
    if (key != "weights.bits" && key != "activations.bits" &&
        !(labelled && is_method_key(key) && key != "label"))
      row_keys.push_back(key);
  if (!bits_keys.empty() && !row_keys.empty()) {
    PivotSpec pv;
    pv.rows = row_keys;
    for (const auto& b : bits_keys) pv.column += (pv.column.empty() ? "" : ",") + b;
    pv.value = metric;
    ao.pivots.push_back(pv);
  }
  return aggregate_sweep(sweep_dir, ao);
}

std::vector<std::pair<std::string, std::string>> figure_links(const std::string& n) {
  return {{"SVG", n + ".svg"}, {"data", n + ".csv"}, {"gnuplot", n + ".gp"}};
}

/// The FP reference check of the sweep (fp_check.json), or why there is none.
void fp_check_section(Document& doc, const store::SweepDir& dir) {
  doc.heading(2, "FP reference check");
  {
    const json checks = dir.read_fp_checks();
    if (checks.empty()) {
      doc.paragraph(
          "Not checked: no model of this sweep records a published accuracy for the "
          "dataset it is evaluated on (scripts/export_torchvision.py writes "
          "torchvision's; docs/reproduce.md).");
    } else {
      std::vector<std::string> lines;
      for (const auto& c : checks)
        lines.push_back(c.value("outcome", "?") + ": " +
                        display_value("model.path", c.value("model", "")) + " — " +
                        c.value("message", ""));
      doc.bullets(lines);
    }
  }
}

/// The tables: the metric by bits (if any), the summary, the failed trials.
void results_section(Document& doc, const AggregateResult& agg, const std::string& metric,
                     bool pool_model_seeds) {
  doc.heading(2, "Results");
  doc.paragraph(std::string("Values: mean ± sample standard deviation (ddof = 1) over ") +
                (pool_model_seeds
                     ? "independently trained models (training seeds) and calibration seeds"
                     : "seeds") +
                "; n = trials with a result.");
  if (!agg.pivots.empty()) {
    doc.heading(3, eval::metric_display(metric) + " by " + agg.pivot_specs[0].column);
    doc.table(agg.pivots[0]);
  }
  doc.heading(3, "Summary");
  doc.table(agg.summary);
  if (agg.failed.rows()) {
    doc.heading(3, "Failed trials");
    doc.table(agg.failed);
  }
}

/// The figures with their captions: overhead, bits, the per-layer figures.
void figure_sections(Document& doc, const std::vector<Captioned>& tradeoff,
                     const std::vector<Captioned>& bits, const std::vector<Detail>& details,
                     int detail_bits, const std::string& metric, Overhead overhead) {
  if (!tradeoff.empty()) {
    doc.heading(2, eval::metric_display(metric) + " against overhead");
    doc.paragraph(
        "Every method on one axis: multipoint budgets, OCS expand ratios and bit "
        "allocation move along it; single-point methods sit at zero. The dashed line "
        "is the full-precision model. Overhead axis: " +
        overhead_label(overhead) + " (`--overhead macs|channels|weight_bits`).");
    for (const auto& [n, c] : tradeoff) doc.figure(n + ".png", c, figure_links(n));
  }
  if (!bits.empty()) {
    doc.heading(2, eval::metric_display(metric) + " against bits");
    for (const auto& [n, c] : bits) doc.figure(n + ".png", c, figure_links(n));
  }
  if (!details.empty()) {
    doc.heading(2, format("Where the points went (multipoint, W%d)", detail_bits));
    doc.paragraph(
        "One representative multipoint trial per setting: output-error allocation, the "
        "budget nearest 10%, the lowest seeds. Errors are the greedy values from the "
        "trial file's per-point tables (before the refit; trial-file-format.md).");
    for (const auto& d : details) {
      doc.heading(3, d.title);
      for (size_t i = 0; i < d.names.size(); ++i)
        doc.figure(d.names[i] + ".png", d.captions[i], figure_links(d.names[i]));
    }
  }
}

/// Conventions: what every trial shares and what varies, from the manifests.
void conventions_section(Document& doc, const std::vector<ReportTrial>& trials) {
  static const std::pair<const char*, const char*> kConventions[] = {
      {"task", "task"},
      {"model_path", "model"},
      {"model_sha256", "model SHA-256"},
      {"dataset", "dataset"},
      {"dataset_layout", "dataset layout"},
      {"dataset_fingerprint", "dataset fingerprint"},
      {"eval_split", "evaluation split"},
      {"eval_images", "evaluation images"},
      {"preprocessing", "preprocessing"},
      {"calibration_split", "calibration split"},
      {"calibration_size", "calibration images"},
      {"calibration_seed", "calibration seed"},
      {"bn_folded", "BatchNorm folded"},
      {"first_layer", "first layer"},
      {"last_layer", "last layer"},
      {"weight_method", "weight method"},
      {"weight_bits", "weight bits"},
      {"weight_granularity", "weight granularity"},
      {"weight_search", "coefficient search"},
      {"activation_bits", "activation bits"},
      {"bias_correction", "bias correction"},
  };
  Table shared({"convention", "value"}), varies({"convention", "values"});
  for (const auto& [key, label] : kConventions) {
    std::vector<std::string> values;
    bool present = false;
    for (const auto& t : trials) {
      if (!t.manifest.contains(key)) continue;
      present = true;
      const json& v = t.manifest[key];
      std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      if (std::string(key) == "bn_folded" || std::string(key) == "bias_correction")
        s = s == "1" || s == "true" ? "yes" : s == "0" || s == "false" ? "no" : s;
      if (std::find(values.begin(), values.end(), s) == values.end()) values.push_back(s);
    }
    if (!present) continue;
    if (values.size() == 1) {
      shared.add_row({label, values[0]});
    } else {
      std::string list;
      for (size_t i = 0; i < values.size() && i < 6; ++i) list += (i ? "; " : "") + values[i];
      if (values.size() > 6) list += format("; ... (%zu values)", values.size());
      varies.add_row({label, list});
    }
  }
  doc.heading(2, "Conventions");
  doc.paragraph(
      "From the trial manifests (docs/trial-file-format.md): what every trial shares, "
      "then what varies.");
  doc.table(shared);
  if (varies.rows()) {
    doc.paragraph("Varying between trials:");
    doc.table(varies);
  }
}

/// Provenance: commits, libraries, hosts, threads, time.
void provenance_section(Document& doc, const std::vector<ReportTrial>& trials) {
  auto distinct = [&](const char* key) {
    std::vector<std::string> v;
    for (const auto& t : trials)
      if (t.manifest.contains(key)) {
        const json& x = t.manifest[key];
        std::string s = x.is_string() ? x.get<std::string>() : x.dump();
        if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
      }
    std::string out;
    for (size_t i = 0; i < v.size() && i < 8; ++i) out += (i ? ", " : "") + v[i];
    if (v.size() > 8) out += format(" ... (%zu)", v.size());
    return out.empty() ? std::string("-") : out;
  };
  double seconds = 0, core_seconds = 0;
  std::string first, last;
  for (const auto& t : trials) {
    const double s = std::max(0.0, number(t.manifest, "seconds"));
    seconds += s;
    const double threads = number(t.manifest, "threads");
    core_seconds += s * (std::isnan(threads) || threads < 1 ? 1.0 : threads);
    std::string b = t.manifest.value("start_time", ""), e = t.manifest.value("end_time", "");
    if (!b.empty() && (first.empty() || b < first)) first = b;
    if (!e.empty() && e > last) last = e;
  }
  doc.heading(2, "Provenance");
  doc.bullets({"mpq commits: " + distinct("git_commit") +
                   " (uncommitted changes: " + distinct("git_dirty") + ")",
               "libraries: LibTorch " + distinct("torch_version") + ", HDF5 " +
                   distinct("hdf5_version") + ", MPI " + distinct("mpi_version") + ", OpenCV " +
                   distinct("opencv_version") + "; compiler " + distinct("compiler"),
               "hosts: " + distinct("host"),
               "threads per trial: " + distinct("threads") + "; MPI ranks: " + distinct("ranks"),
               format("trial time: %.1f s in total (%.2f core-hours at the recorded threads), "
                      "from %s to %s",
                      seconds, core_seconds / 3600.0, first.c_str(), last.c_str())});
}

}  // namespace

ReportResult write_report(const std::string& sweep_dir, const ReportOptions& o) {
  store::SweepDir dir(sweep_dir);
  const auto plan = dir.read_plan();  // InputError if not a sweep directory
  std::set<std::string> metric_names;
  const std::vector<ReportTrial> trials =
      read_done_trials(dir, sweep_dir, o.pool_model_seeds, &metric_names);
  const FigureContext c = figure_context(trials, metric_names, sweep_dir, o);

  std::vector<std::string> keys;  // the settings the sweep varies, in plan order
  for (const auto& p : plan)
    for (const auto& [key, v] : p.settings.items())
      if (key != "seed" && std::find(keys.begin(), keys.end(), key) == keys.end())
        keys.push_back(key);
  const AggregateResult agg = report_tables(sweep_dir, keys, c.metric, o.pool_model_seeds);

  ReportResult result;
  result.dir = sweep_dir + "/report";
  // Everything is written to a temporary directory that replaces report/ only when complete: a
  // failed run (gnuplot missing, disk full) leaves the previous report as it was.
  AtomicFile out(result.dir);
  const std::string& work = out.tmp();
  fs::create_directories(work);

  std::vector<Figure> figures;
  const auto tradeoff = tradeoff_figures(trials, c, &figures);
  std::vector<Captioned> bits;
  if (std::find(keys.begin(), keys.end(), "weights.bits") != keys.end())
    bits = bits_figures(trials, c, &figures);
  const int detail = detail_bits(trials, o.detail_bits);
  const auto details = layer_figures(dir, trials, detail, &figures);
  for (const auto& f : figures) {
    render_figure(work, f);
    result.figures.push_back(f.name);
  }

  // The document.
  const json sweep_doc = dir.read_sweep_document();
  std::string sweep_name = sweep_doc.value("name", fs::path(sweep_dir).filename().string());
  Document doc;
  doc.heading(1, "Report: " + sweep_name);
  if (sweep_doc.contains("description")) doc.paragraph(sweep_doc["description"].get<std::string>());
  doc.paragraph(
      format("%d trials done, %d failed, %d pending (of %zu planned). Written by `mpq "
             "report`; tables also in ../aggregate/ (Markdown, CSV, LaTeX).",
             agg.done, agg.failed_count, agg.pending, plan.size()));
  fp_check_section(doc, dir);
  results_section(doc, agg, c.metric, o.pool_model_seeds);
  figure_sections(doc, tradeoff, bits, details, detail, c.metric, o.overhead);
  conventions_section(doc, trials);
  provenance_section(doc, trials);
  store::write_file_atomic(work + "/report.md", doc.markdown());
  store::write_file_atomic(work + "/report.html", doc.html("mpq report: " + sweep_name));
  out.commit();
  result.markdown = result.dir + "/report.md";
  result.html = result.dir + "/report.html";
  return result;
}

}  // namespace mpq::report
