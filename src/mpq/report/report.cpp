#include "mpq/report/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "mpq/eval/metrics.h"
#include "mpq/report/aggregate.h"
#include "mpq/report/document.h"
#include "mpq/report/figures.h"
#include "mpq/report/statistics.h"
#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"

namespace mpq::report {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- what a setting means for the figures ------------------------------------------------------

bool starts_with(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

/// Settings that choose the method and its hyperparameters (one line of a figure per method).
bool is_method_key(const std::string& k) {
  return k == "label" || k == "weights.method" || starts_with(k, "weights.multipoint.") ||
         starts_with(k, "weights.ocs.") || starts_with(k, "weights.aciq.") ||
         starts_with(k, "weights.percentile.") || starts_with(k, "weights.bit_alloc.") ||
         k == "weights.search" || k == "weights.first_point";
}

/// Method settings that move a method along the overhead axis (points of one line).
bool is_knob(const std::string& k) {
  return k == "weights.multipoint.budget" || k == "weights.ocs.expand_ratio" ||
         k == "weights.bit_alloc.average_bits";
}

std::string short_key(const std::string& k) {
  if (k == "model.path") return "model";
  if (k == "weights.bits") return "W bits";
  if (k == "activations.bits") return "A bits";
  if (k == "weights.granularity") return "granularity";
  if (k == "bias_correction") return "bias correction";
  auto dot = k.rfind('.');
  return dot == std::string::npos ? k : k.substr(dot + 1);
}

std::string method_display(const std::string& m) {
  if (m == "rtn") return "RTN";
  if (m == "mse") return "MSE";
  if (m == "aciq") return "ACIQ";
  if (m == "ocs") return "OCS";
  if (m == "bit_alloc") return "bit allocation";
  if (m == "percentile") return "percentile";
  if (m == "gptq") return "GPTQ";
  if (m == "adaround") return "AdaRound";
  return m;
}

// ---- the trials --------------------------------------------------------------------------------

struct Trial {
  store::PlannedTrial plan;
  json metrics, manifest;
  std::vector<store::LayerRecord> layers;  // attrs + points_per_channel
  json key;                                // settings without seed (model seeds pooled if asked)
  int64_t model_seed = -1;
  int64_t seed = 0;
  size_t order = 0;  // plan order
};

json normalized_key(const json& settings, bool pool, int64_t* model_seed) {
  json key = json::object();
  *model_seed = -1;
  for (const auto& [k, v] : settings.items()) {
    if (k == "seed") continue;
    if (k == "model.path" && v.is_string()) {
      auto [base, ms] = split_model_seed(v.get<std::string>());
      *model_seed = ms;
      key[k] = pool ? json(base) : v;
    } else {
      key[k] = v;
    }
  }
  return key;
}

json subset(const json& key, bool (*keep)(const std::string&), bool negate) {
  json o = json::object();
  for (const auto& [k, v] : key.items())
    if (keep(k) != negate) o[k] = v;
  return o;
}

std::string title_of(const json& context) {
  std::string t;
  for (const auto& [k, v] : context.items())
    t += (t.empty() ? "" : ", ") + short_key(k) + " " + display_value(k, v);
  return t.empty() ? "all trials" : t;
}

double number(const json& j, const std::string& k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
}

struct MeanStd {
  double mean = NAN, std = 0;
  int n = 0;
};
// The figures' view of the shared statistics (statistics.h): no error bar below two observations.
MeanStd mean_std(const std::vector<double>& xs) {
  const MeanSd s = mean_sd(xs);
  MeanStd r;
  r.n = s.n;
  r.mean = s.mean;
  r.std = s.error_bar();
  return r;
}

// Ordered map keyed by a JSON dump, remembering first-seen order.
template <typename V>
struct Ordered {
  std::vector<std::string> order;
  std::map<std::string, V> items;
  V& at(const std::string& k) {
    if (!items.count(k)) order.push_back(k);
    return items[k];
  }
};

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000080", "#808000"};
std::string color(size_t i) {
  return kPalette[i % (sizeof kPalette / sizeof *kPalette)];
}

// ---- figures -----------------------------------------------------------------------------------

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
                   const std::string& fp_label, bool integer_x, bool percent_y) {
  Figure f;
  f.name = name;
  f.csv = "line,label,x,x_std,y,y_std,n,fp\n";
  auto q = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
  };
  for (const auto& s : series)
    for (const auto& p : s.points)
      f.csv += q(s.name) + "," + q(p.label) + "," + csv_number(p.x.mean) + "," +
               csv_number(p.x.std) + "," + csv_number(p.y.mean) + "," + csv_number(p.y.std) + "," +
               std::to_string(p.y.n) + "," + csv_number(fp) + "\n";
  std::string b = "set title " + gp_string(title) + "\nset xlabel " + gp_string(xlabel) +
                  "\nset ylabel " + gp_string(ylabel) +
                  "\nset grid\nset key outside right top box\nset offsets graph 0.03, graph 0.03, "
                  "graph 0.05, graph 0.05\n";
  if (integer_x) b += "set xtics 1\n";
  if (percent_y) b += "set yrange [0<*:*<100]\n";
  std::string plot = "plot ";
  static const int kPointTypes[] = {7, 5, 9, 11, 13, 4, 6, 8, 10, 12, 14, 1};
  for (size_t i = 0; i < series.size(); ++i) {
    plot += std::string(i ? ", \\\n     " : "") + "DATA skip 1 using 3:(strcol(1) eq " +
            gp_string(series[i].name) + " ? $5 : NaN):6 with yerrorlines lw 2 pt " +
            std::to_string(kPointTypes[i % 12]) + " ps 1.3 lc rgb " + gp_string(color(i)) +
            " title " + gp_string(series[i].name);
  }
  if (!std::isnan(fp))
    plot += ", \\\n     DATA skip 1 using 3:8 with lines dt 2 lw 2 lc rgb \"black\" title " +
            gp_string(fp_label);
  f.body = b + plot + "\n";
  f.width = 1250;
  f.height = 640;
  return f;
}

// ---- report ------------------------------------------------------------------------------------

std::string overhead_metric(const std::string& o) {
  if (o == "macs") return "extra_macs_pct";
  if (o == "channels") return "extra_channels_pct";
  if (o == "weight_bits") return "extra_weight_bits_pct";
  throw ConfigError("--overhead " + o + ": expected macs, channels or weight_bits");
}
std::string overhead_label(const std::string& o) {
  if (o == "macs") return "extra MACs (%)";
  if (o == "channels") return "extra output channels (%)";
  return "extra weight bits (%)";
}

}  // namespace

ReportResult write_report(const std::string& sweep_dir, const ReportOptions& o) {
  const std::string xmetric = overhead_metric(o.overhead);
  store::SweepDir dir(sweep_dir);
  const auto plan = dir.read_plan();  // InputError if not a sweep directory
  auto status = dir.status(dir.max_attempts());

  // Done trials, with summaries of their files.
  std::vector<Trial> trials;
  std::set<std::string> metric_names;
  for (size_t i = 0; i < status.trials.size(); ++i) {
    const auto& [p, st] = status.trials[i];
    if (st != store::TrialState::kDone) continue;
    auto rec = store::read_trial(dir.trial_path(p.id), store::TrialParts::kSummary);
    Trial t;
    t.plan = p;
    t.metrics = rec.metrics;
    t.manifest = rec.manifest;
    t.layers = std::move(rec.layers);
    t.key = normalized_key(p.settings, o.pool_model_seeds, &t.model_seed);
    t.seed = p.config.value("seed", int64_t{0});
    t.order = i;
    for (const auto& [m, v] : rec.metrics.items())
      if (v.is_number()) metric_names.insert(m);
    trials.push_back(std::move(t));
  }
  if (trials.empty())
    throw InputError(sweep_dir + ": no finished trials to report on (see mpq status " + sweep_dir +
                     ")");
  std::vector<eval::TaskMetrics> trial_tasks;
  for (const auto& t : trials) trial_tasks.push_back(eval::trial_task_metrics(t.manifest));
  const std::string headline = eval::common_task_metrics(trial_tasks, sweep_dir).headline;
  const std::string metric = o.metric.empty() ? headline : o.metric;
  if (!metric_names.count(metric)) {
    std::string list;
    for (const auto& m : metric_names) list += (list.empty() ? "" : ", ") + m;
    throw ConfigError("--metric: '" + metric + "' is not a metric of this sweep (metrics: " + list +
                      ")");
  }
  const double k = eval::is_percent_metric(metric) ? 100.0 : 1.0;
  const std::string fp_metric = metric_names.count("fp_" + metric) ? "fp_" + metric : "";

  // Tables through aggregate (also written to aggregate/, with LaTeX).
  std::vector<std::string> keys;
  for (const auto& p : plan)
    for (const auto& [key, v] : p.settings.items())
      if (key != "seed" && std::find(keys.begin(), keys.end(), key) == keys.end())
        keys.push_back(key);
  AggregateOptions ao;
  ao.pool_model_seeds = o.pool_model_seeds;
  ao.latex = true;
  ao.bold_best = true;
  {
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
  }
  auto agg = aggregate_sweep(sweep_dir, ao);

  ReportResult result;
  result.dir = sweep_dir + "/report";
  // Everything is written to a temporary directory that replaces report/ only when complete: a
  // failed run (gnuplot missing, disk full) leaves the previous report as it was.
  AtomicFile out(result.dir);
  const std::string& work = out.tmp();
  fs::create_directories(work);
  std::vector<Figure> figures;

  // ---- trade-off: metric against overhead, per panel ----
  std::vector<std::pair<std::string, std::string>> tradeoff_captions;  // name, caption
  {
    Ordered<Ordered<Ordered<std::vector<const Trial*>>>> panels;  // panel -> line -> point
    for (const auto& t : trials) {
      json context = subset(t.key, is_method_key, true);
      json method = subset(t.key, is_method_key, false);
      json line = json::object();
      for (const auto& [key, v] : method.items())
        if (!is_knob(key) && key != "label") line[key] = v;
      line["__method"] = t.plan.config["weights"].value("method", "");
      json point = method;
      panels.at(context.dump()).at(line.dump()).at(point.dump()).push_back(&t);
    }
    int index = 0;
    for (const auto& pk : panels.order) {
      auto& lines = panels.items[pk];
      std::vector<Series> series;
      double fp_sum = 0;
      int fp_n = 0;
      bool any_overhead = false;
      for (const auto& lk : lines.order) {
        json line = json::parse(lk);
        Series s;
        s.name = method_display(line["__method"].get<std::string>());
        std::string params;
        for (const auto& [key, v] : line.items())
          if (key != "__method" && key != "weights.method")
            params += (params.empty() ? "" : ", ") + short_key(key) + "=" + display_value(key, v);
        if (!params.empty()) s.name += " (" + params + ")";
        for (const auto& ptk : lines.items[lk].order) {
          const auto& ts = lines.items[lk].items[ptk];
          Series::Point p;
          json pj = json::parse(ptk);
          p.label = pj.contains("label") ? pj["label"].get<std::string>() : s.name;
          std::vector<double> xs, ys;
          for (const Trial* t : ts) {
            xs.push_back(number(t->metrics, xmetric));
            ys.push_back(k * number(t->metrics, metric));
            if (!fp_metric.empty() && !std::isnan(number(t->metrics, fp_metric))) {
              fp_sum += k * number(t->metrics, fp_metric);
              ++fp_n;
            }
          }
          p.x = mean_std(xs);
          p.y = mean_std(ys);
          if (p.x.mean > 1e-9) any_overhead = true;
          s.points.push_back(p);
        }
        std::stable_sort(
            s.points.begin(), s.points.end(),
            [](const Series::Point& a, const Series::Point& b) { return a.x.mean < b.x.mean; });
        series.push_back(s);
      }
      if (!any_overhead) continue;  // no method with overhead here: the bits figure covers it
      const double fp = fp_n ? fp_sum / fp_n : NAN;
      const std::string title = title_of(json::parse(pk));
      const std::string name = format("tradeoff-%02d", ++index);
      figures.push_back(line_figure(name, title, overhead_label(o.overhead),
                                    eval::metric_display(metric), series, fp, format("FP %.2f", fp),
                                    false, eval::is_percent_metric(metric)));
      tradeoff_captions.push_back(
          {name, eval::metric_display(metric) + " against " + overhead_label(o.overhead) + " — " +
                     title + " (mean ± std over " +
                     (o.pool_model_seeds ? "training and calibration seeds" : "seeds") + ")"});
    }
  }

  // ---- metric against bits, per panel ----
  std::vector<std::pair<std::string, std::string>> bits_captions;
  if (std::find(keys.begin(), keys.end(), "weights.bits") != keys.end()) {
    Ordered<Ordered<std::map<int, std::vector<const Trial*>>>> panels;
    for (const auto& t : trials) {
      json context = subset(t.key, is_method_key, true);
      context.erase("weights.bits");
      json method = subset(t.key, is_method_key, false);
      int bits = t.key.value("weights.bits", 0);
      panels.at(context.dump()).at(method.dump())[bits].push_back(&t);
    }
    int index = 0;
    for (const auto& pk : panels.order) {
      auto& lines = panels.items[pk];
      std::set<int> all_bits;
      std::vector<Series> series;
      for (const auto& lk : lines.order) {
        json method = json::parse(lk);
        Series s;
        if (method.contains("label")) {
          s.name = method["label"].get<std::string>();
        } else {
          for (const auto& [key, v] : method.items())
            s.name += (s.name.empty() ? "" : ", ") + short_key(key) + "=" + display_value(key, v);
          if (s.name.empty()) s.name = "all";
        }
        for (const auto& [bits, ts] : lines.items[lk]) {
          all_bits.insert(bits);
          Series::Point p;
          p.label = s.name;
          std::vector<double> ys;
          for (const Trial* t : ts) ys.push_back(k * number(t->metrics, metric));
          p.x = mean_std({static_cast<double>(bits)});
          p.y = mean_std(ys);
          s.points.push_back(p);
        }
        series.push_back(s);
      }
      if (all_bits.size() < 2) continue;
      double fp_sum = 0;
      int fp_n = 0;
      for (const auto& lk : lines.order)
        for (const auto& [bits, ts] : lines.items[lk])
          for (const Trial* t : ts)
            if (!fp_metric.empty() && !std::isnan(number(t->metrics, fp_metric))) {
              fp_sum += k * number(t->metrics, fp_metric);
              ++fp_n;
            }
      const double fp = fp_n ? fp_sum / fp_n : NAN;
      const std::string title = title_of(json::parse(pk));
      const std::string name = format("bits-%02d", ++index);
      figures.push_back(line_figure(name, title, "weight bits", eval::metric_display(metric),
                                    series, fp, format("FP %.2f", fp), true,
                                    eval::is_percent_metric(metric)));
      bits_captions.push_back(
          {name, eval::metric_display(metric) + " against weight bits — " + title});
    }
  }

  // ---- per-layer figures of one multipoint trial per panel ----
  struct Detail {
    std::string title;       // for the report
    std::string plot_title;  // two short lines for the figures
    std::vector<std::string> names;
    std::vector<std::string> captions;
  };
  std::vector<Detail> details;
  int detail_bits = o.detail_bits;
  {
    std::set<int> mp_bits;
    for (const auto& t : trials)
      if (t.plan.config["weights"].value("method", "") == "multipoint")
        mp_bits.insert(t.plan.config["weights"].value("bits", 0));
    if (detail_bits == 0 && !mp_bits.empty()) detail_bits = mp_bits.count(4) ? 4 : *mp_bits.begin();
    Ordered<const Trial*> chosen;  // panel -> representative
    auto rank = [](const Trial* t) {
      const auto& mp = t->plan.config["weights"]["multipoint"];
      const bool output_policy = mp.value("policy", "budget") == "budget";  // output-error budget
      return std::make_tuple(output_policy ? 0 : 1, std::fabs(mp.value("budget", 0.0) - 0.10),
                             std::max<int64_t>(t->model_seed, 0), t->seed, t->order);
    };
    for (const auto& t : trials) {
      const auto& w = t.plan.config["weights"];
      if (w.value("method", "") != "multipoint" || w.value("bits", 0) != detail_bits) continue;
      json context = subset(t.key, is_method_key, true);
      const Trial*& c = chosen.at(context.dump());
      if (c == nullptr || rank(&t) < rank(c)) c = &t;
    }
    int index = 0;
    for (const auto& pk : chosen.order) {
      const Trial* t = chosen.items[pk];
      auto rec = store::read_trial(dir.trial_path(t->plan.id), store::TrialParts::kErrorTables);
      ++index;
      Detail d;
      d.title = title_of(json::parse(pk)) + " — " + t->plan.settings.value("label", "multipoint") +
                ", seed " + std::to_string(t->seed) +
                (t->model_seed > 0 ? ", model seed " + std::to_string(t->model_seed) : "") +
                " (trial " + t->plan.id.substr(0, 12) + ")";
      d.plot_title = title_of(json::parse(pk)) + "\n" +
                     t->plan.settings.value("label", "multipoint") + ", seed " +
                     std::to_string(t->seed) +
                     (t->model_seed > 0 ? ", model seed " + std::to_string(t->model_seed) : "");
      std::vector<const store::LayerRecord*> layers;
      int K = 1;
      for (const auto& L : rec.layers)
        if (L.attrs.value("quantized", 0) != 0 && !L.points_per_channel.empty()) {
          layers.push_back(&L);
          K = std::max(K, L.max_points);
        }
      if (layers.empty()) continue;
      const bool have_out = std::any_of(layers.begin(), layers.end(), [](auto* L) {
        return !L->output_error.empty() && L->attrs.contains("output_rel_error_1pt");
      });

      // errors against points
      {
        Figure f;
        f.name = format("errors-%02d", index);
        std::vector<double> wnorm, onorm;
        f.csv = "points,weight_rel_network,output_rel_network";
        for (auto* L : layers) f.csv += format(",weight_rel_%d,output_rel_%d", L->index, L->index);
        f.csv += "\n";
        for (auto* L : layers) {
          const int64_t C = static_cast<int64_t>(L->points_per_channel.size());
          auto col0 = [&](const std::vector<float>& tab) {
            double s = 0;
            for (int64_t c = 0; c < C; ++c) s += tab[static_cast<size_t>(c * L->max_points)];
            return s;
          };
          // Layer energies from the stored relative errors of one point (trial-file-format.md).
          double wr = number(L->attrs, "weight_rel_error_1pt");
          double orr = number(L->attrs, "output_rel_error_1pt");
          wnorm.push_back(!L->weight_error.empty() && wr > 0 ? col0(L->weight_error) / (wr * wr)
                                                             : NAN);
          onorm.push_back(!L->output_error.empty() && orr > 0 ? col0(L->output_error) / orr : NAN);
        }
        for (int p = 1; p <= K; ++p) {
          double wsum = 0, wn = 0, osum = 0, on = 0;
          std::string cols;
          for (size_t i = 0; i < layers.size(); ++i) {
            auto* L = layers[i];
            const int64_t C = static_cast<int64_t>(L->points_per_channel.size());
            double we = NAN, oe = NAN;
            if (p <= L->max_points && !std::isnan(wnorm[i])) {
              double s = 0;
              for (int64_t c = 0; c < C; ++c)
                s += L->weight_error[static_cast<size_t>(c * L->max_points + p - 1)];
              we = std::sqrt(s / wnorm[i]);
              wsum += s;
              wn += wnorm[i];
            }
            if (p <= L->max_points && !std::isnan(onorm[i])) {
              double s = 0;
              for (int64_t c = 0; c < C; ++c)
                s += L->output_error[static_cast<size_t>(c * L->max_points + p - 1)];
              oe = s / onorm[i];
              osum += s;
              on += onorm[i];
            }
            cols += "," + csv_number(we) + "," + csv_number(oe);
          }
          f.csv += std::to_string(p) + "," + csv_number(wn > 0 ? std::sqrt(wsum / wn) : NAN) + "," +
                   csv_number(on > 0 ? osum / on : NAN) + cols + "\n";
        }
        const int nl = static_cast<int>(layers.size());
        std::string one =
            "set grid\nset logscale y\nset format y \"%g\"\nset xtics 1\nset xrange [0.8:" +
            std::to_string(K) +
            ".2]\nset xlabel \"points per channel (all channels)\"\nset key top right\n";
        f.body = "set multiplot layout 1," + std::string(have_out ? "2" : "1") + " title " +
                 gp_string(d.plot_title) + "\n" + one +
                 "set title \"weight: ||w - w~|| / ||w||\"\nset ylabel \"relative error\"\n"
                 "plot for [i=0:" +
                 std::to_string(nl - 1) +
                 "] DATA skip 1 using 1:(column(4+2*i)) with lines lc rgb \"#c0c0c0\" notitle, \\\n"
                 "     DATA skip 1 using 1:2 with linespoints lw 3 pt 7 lc rgb \"#1f77b4\" title "
                 "\"network\", \\\n"
                 "     1/0 with lines lc rgb \"#c0c0c0\" title \"layers\"\n";
        if (have_out)
          f.body +=
              "set title \"output: (w - w~)' S (w - w~) / w' S w\"\n"
              "plot for [i=0:" +
              std::to_string(nl - 1) +
              "] DATA skip 1 using 1:(column(5+2*i)) with lines lc rgb \"#c0c0c0\" notitle, "
              "\\\n     DATA skip 1 using 1:3 with linespoints lw 3 pt 7 lc rgb \"#d62728\" "
              "title \"network\", \\\n"
              "     1/0 with lines lc rgb \"#c0c0c0\" title \"layers\"\n";
        f.body += "unset multiplot\n";
        f.width = have_out ? 1400 : 800;
        f.height = 600;
        d.names.push_back(f.name);
        d.captions.push_back(
            "Relative weight and output error against the number of greedy points per channel, "
            "per layer (grey) and for the network — " +
            d.title);
        figures.push_back(f);
      }
      // points per channel: network
      {
        std::vector<int64_t> hist(static_cast<size_t>(K) + 1, 0);
        int64_t total = 0;
        for (auto* L : layers)
          for (int32_t n : L->points_per_channel)
            if (n > 0) {
              ++hist[static_cast<size_t>(std::min(n, K))];
              ++total;
            }
        Figure f;
        f.name = format("points-%02d", index);
        f.csv = "points,channels,percent\n";
        for (int p = 1; p <= K; ++p)
          f.csv +=
              format("%d,%lld,%s\n", p, static_cast<long long>(hist[static_cast<size_t>(p)]),
                     csv_number(total ? 100.0 * hist[static_cast<size_t>(p)] / total : 0).c_str());
        f.body = "set title " + gp_string(d.plot_title) +
                 "\nset xlabel \"points per channel\"\nset ylabel \"channels (%)\"\n"
                 "set grid ytics\nset style fill solid 0.8 border -1\nset boxwidth 0.6\n"
                 "set xtics 1\nset xrange [0.4:" +
                 std::to_string(K) +
                 ".6]\nset yrange [0:105]\n"
                 "unset key\nplot DATA skip 1 using 1:3 with boxes lc rgb \"#1f77b4\", \\\n"
                 "     DATA skip 1 using 1:3:(sprintf(\"%.1f%%\", $3)) with labels offset 0,1\n";
        f.width = 800;
        f.height = 560;
        d.names.push_back(f.name);
        d.captions.push_back("Points per output channel over the network's " +
                             std::to_string(total) + " channels — " + d.title);
        figures.push_back(f);
      }
      // points per channel: per layer
      {
        Figure f;
        f.name = format("points-layers-%02d", index);
        f.csv = "layer,name,channels";
        for (int p = 1; p <= K; ++p) f.csv += format(",points_%d_pct", p);
        f.csv += "\n";
        for (auto* L : layers) {
          std::vector<int64_t> h(static_cast<size_t>(K) + 1, 0);
          int64_t n = 0;
          for (int32_t x : L->points_per_channel)
            if (x > 0) {
              ++h[static_cast<size_t>(std::min(x, K))];
              ++n;
            }
          f.csv += format("%d,%s,%lld", L->index, L->attrs.value("name", "").c_str(),
                          static_cast<long long>(n));
          for (int p = 1; p <= K; ++p)
            f.csv += "," + csv_number(n ? 100.0 * h[static_cast<size_t>(p)] / n : 0);
          f.csv += "\n";
        }
        const int step = std::max<int>(1, static_cast<int>(layers.size()) / 25);
        f.body =
            "set title " + gp_string(d.plot_title) +
            "\nset xlabel \"layer (execution order)\"\nset ylabel \"channels of the layer (%)\"\n"
            "set style data histograms\nset style histogram rowstacked\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.8\nset yrange [0:100]\n"
            "set key outside right top\nset grid ytics\n"
            "plot for [p=1:" +
            std::to_string(K) + "] DATA skip 1 using (column(3+p)):xtic(int($0) % " +
            std::to_string(step) +
            " == 0 ? stringcolumn(1) : \"\") title sprintf(\"%d point%s\", p, p > 1 ? \"s\" : "
            "\"\")\n";
        f.width = 1200;
        f.height = 560;
        d.names.push_back(f.name);
        d.captions.push_back("Points per channel, layer by layer — " + d.title);
        figures.push_back(f);
      }
      // per-layer error: one point vs after allocation
      {
        Figure f;
        f.name = format("layer-error-%02d", index);
        f.csv = "layer,name,macs,weight_rel_1pt,weight_rel_final,output_rel_1pt,output_rel_final\n";
        for (auto* L : layers)
          f.csv += format("%d,%s,%s,%s,%s,%s,%s\n", L->index, L->attrs.value("name", "").c_str(),
                          csv_number(number(L->attrs, "macs")).c_str(),
                          csv_number(number(L->attrs, "weight_rel_error_1pt")).c_str(),
                          csv_number(number(L->attrs, "weight_rel_error_final")).c_str(),
                          csv_number(number(L->attrs, "output_rel_error_1pt")).c_str(),
                          csv_number(number(L->attrs, "output_rel_error_final")).c_str());
        const std::string c1 = have_out ? "6" : "4", c2 = have_out ? "7" : "5";
        f.body = "set title " + gp_string(d.plot_title) +
                 "\nset xlabel \"layer (execution order)\"\nset ylabel " +
                 gp_string(have_out ? "relative output error" : "relative weight error") +
                 "\nset logscale y\nset format y \"%g\"\nset grid\nset key top right\n"
                 "plot DATA skip 1 using 1:" +
                 c1 +
                 " with linespoints lw 2 pt 7 lc rgb \"#7f7f7f\" title \"one point\", \\\n"
                 "     DATA skip 1 using 1:" +
                 c2 + " with linespoints lw 2 pt 5 lc rgb \"#d62728\" title \"after allocation\"\n";
        f.width = 1200;
        f.height = 560;
        d.names.push_back(f.name);
        d.captions.push_back("Per-layer " + std::string(have_out ? "output" : "weight") +
                             " error with one point and after the extra points were allocated — " +
                             d.title);
        figures.push_back(f);
      }
      // where the budget went
      {
        double macs_total = 0, extra_total = 0;
        for (auto* L : layers) {
          macs_total += std::max(0.0, number(L->attrs, "macs"));
          extra_total += std::max(0.0, number(L->attrs, "extra_points"));
        }
        Figure f;
        f.name = format("budget-%02d", index);
        f.csv = "layer,name,macs,macs_pct,extra_points,extra_points_pct\n";
        for (auto* L : layers) {
          double m = number(L->attrs, "macs"), e = number(L->attrs, "extra_points");
          f.csv += format("%d,%s,%s,%s,%s,%s\n", L->index, L->attrs.value("name", "").c_str(),
                          csv_number(m).c_str(),
                          csv_number(macs_total > 0 ? 100.0 * m / macs_total : NAN).c_str(),
                          csv_number(e).c_str(),
                          csv_number(extra_total > 0 ? 100.0 * e / extra_total : 0).c_str());
        }
        const int step = std::max<int>(1, static_cast<int>(layers.size()) / 25);
        f.body =
            "set title " + gp_string(d.plot_title) +
            "\nset xlabel \"layer (execution order)\"\nset ylabel \"share of the network (%)\"\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\nset key outside right top\nset grid ytics\n"
            "plot DATA skip 1 using 4:xtic(int($0) % " +
            std::to_string(step) +
            " == 0 ? stringcolumn(1) : \"\") lc rgb \"#7f7f7f\" title \"MACs\", \\\n"
            "     DATA skip 1 using 6 lc rgb \"#d62728\" title \"extra points\"\n";
        f.width = 1200;
        f.height = 560;
        d.names.push_back(f.name);
        d.captions.push_back(
            format("Where the budget went: each layer's share of the %.0f extra points against its "
                   "share of the MACs — ",
                   extra_total) +
            d.title);
        figures.push_back(f);
      }
      details.push_back(d);
    }
  }

  for (const auto& f : figures) {
    render_figure(work, f);
    result.figures.push_back(f.name);
  }

  // ---- the document ----
  const json sweep_doc = dir.read_sweep_document();
  std::string sweep_name = sweep_doc.value("name", fs::path(sweep_dir).filename().string());
  Document doc;
  doc.heading(1, "Report: " + sweep_name);
  if (sweep_doc.contains("description")) doc.paragraph(sweep_doc["description"].get<std::string>());
  doc.paragraph(
      format("%d trials done, %d failed, %d pending (of %zu planned). Written by `mpq "
             "report`; tables also in ../aggregate/ (Markdown, CSV, LaTeX).",
             agg.done, agg.failed_count, agg.pending, plan.size()));
  auto links = [](const std::string& n) {
    return std::vector<std::pair<std::string, std::string>>{
        {"SVG", n + ".svg"}, {"data", n + ".csv"}, {"gnuplot", n + ".gp"}};
  };

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

  doc.heading(2, "Results");
  doc.paragraph(std::string("Values: mean ± sample standard deviation (ddof = 1) over ") +
                (o.pool_model_seeds
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

  if (!tradeoff_captions.empty()) {
    doc.heading(2, eval::metric_display(metric) + " against overhead");
    doc.paragraph(
        "Every method on one axis: multipoint budgets, OCS expand ratios and bit "
        "allocation move along it; single-point methods sit at zero. The dashed line "
        "is the full-precision model. Overhead axis: " +
        overhead_label(o.overhead) + " (`--overhead macs|channels|weight_bits`).");
    for (const auto& [n, c] : tradeoff_captions) doc.figure(n + ".png", c, links(n));
  }
  if (!bits_captions.empty()) {
    doc.heading(2, eval::metric_display(metric) + " against bits");
    for (const auto& [n, c] : bits_captions) doc.figure(n + ".png", c, links(n));
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
        doc.figure(d.names[i] + ".png", d.captions[i], links(d.names[i]));
    }
  }

  // Conventions: what every trial shares and what varies, from the manifests.
  {
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

  // Provenance.
  {
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

  store::write_file_atomic(work + "/report.md", doc.markdown());
  store::write_file_atomic(work + "/report.html", doc.html("mpq report: " + sweep_name));
  out.commit();
  result.markdown = result.dir + "/report.md";
  result.html = result.dir + "/report.html";
  return result;
}

}  // namespace mpq::report
