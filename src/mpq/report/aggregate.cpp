#include "mpq/report/aggregate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "mpq/report/statistics.h"
#include "mpq/store/h5.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"

namespace mpq::report {
namespace fs = std::filesystem;
using nlohmann::json;

std::string display_value(const std::string& key, const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (key == "model.path") {
      if (s.rfind("default:", 0) == 0) return s.substr(8);
      return fs::path(s).stem().string();
    }
    return s;
  }
  if (v.is_number_float()) return format("%g", v.get<double>());
  return v.dump();
}

std::pair<std::string, int64_t> split_model_seed(const std::string& path) {
  if (path.rfind("default:", 0) != 0) return {path, -1};
  auto at = path.find("@seed=");
  if (at == std::string::npos) return {path, 0};
  char* end = nullptr;
  long long n = std::strtoll(path.c_str() + at + 6, &end, 10);
  if (end == nullptr || *end != '\0' || n < 0) return {path, -1};
  return {path.substr(0, at), n};
}

namespace {

std::string cell(const std::string& metric, const MeanSd& s) {
  if (s.n == 0) return "-";
  double k = eval::is_percent_metric(metric) ? 100.0 : 1.0;
  int digits = eval::metric_digits(metric);
  std::string m = format("%.*f", digits, k * s.mean);
  if (s.n > 1) m += format(" ± %.*f", digits, k * s.sd);
  return m;
}

std::string metric_header(const std::string& m) {
  if (eval::is_percent_metric(m)) return m + " %";
  return m;
}

struct Group {
  json settings;  // without seed (and, pooling model seeds, model.path without its seed)
  std::vector<std::string> planned, done;  // replicates: "<seed>", or "m<model seed>s<seed>"
  std::map<std::string, std::vector<double>> values;
  std::map<int64_t, std::vector<double>> headline_by_model;  // pooling: per model seed
};

}  // namespace

namespace {
std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    std::string k =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!k.empty()) out.push_back(k);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}
}  // namespace

PivotSpec parse_pivot(const std::string& p) {
  auto c1 = p.find(':');
  if (c1 == std::string::npos || c1 == 0 || c1 + 1 >= p.size())
    throw ConfigError("--pivot " + p + ": expected ROWS:COLUMN[:METRIC]");
  auto c2 = p.find(':', c1 + 1);
  PivotSpec pv;
  pv.rows = split_commas(p.substr(0, c1));
  pv.column = p.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  if (c2 != std::string::npos) pv.value = p.substr(c2 + 1);
  if (pv.rows.empty() || pv.column.empty() || (c2 != std::string::npos && pv.value.empty()))
    throw ConfigError("--pivot " + p + ": expected ROWS:COLUMN[:METRIC]");
  return pv;
}

namespace {

// One pivot table: rows = the settings pv.rows, columns = the values of pv.column, cells = the
// metric's mean ± sd over the replicates of the groups that fall there.
Table pivot_table(const PivotSpec& pv, const std::vector<Group>& groups,
                  const std::vector<std::string>& keys) {
  for (const auto& k : pv.rows)
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      throw ConfigError("--pivot: '" + k + "' is not a setting of this sweep (settings: " + [&] {
        std::string s;
        for (const auto& x : keys) s += (s.empty() ? "" : ", ") + x;
        return s;
      }() + ")");
  std::vector<std::string> col_keys = split_commas(pv.column);
  for (const auto& k : col_keys)
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      throw ConfigError("--pivot: column '" + k + "' is not a setting of this sweep");
  std::vector<std::string> cols;
  std::vector<std::string> row_keys;
  std::map<std::string, std::map<std::string, std::vector<double>>> cells;
  std::map<std::string, std::vector<std::string>> row_labels;
  for (const auto& g : groups) {
    bool has_all = true;
    std::string c;
    for (const auto& k : col_keys) {
      if (!g.settings.contains(k))
        has_all = false;
      else
        c += (c.empty() ? "" : ",") + display_value(k, g.settings[k]);
    }
    if (!has_all) continue;
    if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
    std::vector<std::string> labels;
    for (const auto& k : pv.rows)
      labels.push_back(g.settings.contains(k) ? display_value(k, g.settings[k]) : "");
    std::string rk = json(labels).dump();
    if (!row_labels.count(rk)) {
      row_keys.push_back(rk);
      row_labels[rk] = labels;
    }
    auto it = g.values.find(pv.value);
    if (it != g.values.end())
      for (double v : it->second) cells[rk][c].push_back(v);
  }
  std::vector<std::string> h = pv.rows;
  for (const auto& c : cols) h.push_back(pv.column + "=" + c);
  Table t(h);
  for (const auto& rk : row_keys) {
    auto row = row_labels[rk];
    for (const auto& c : cols) row.push_back(cell(pv.value, mean_sd(cells[rk][c])));
    t.add_row(row);
  }
  return t;
}

// LaTeX (booktabs) of the summary and every pivot, best values in bold on request.
std::vector<std::string> latex_tables(const AggregateResult& out, const std::string& sweep_dir,
                                      const std::vector<int>& best,
                                      const AggregateOptions& options) {
  std::vector<std::string> tex;  // summary, pivots
  const std::string spread = options.pool_model_seeds
                                 ? "mean ± sample std over training and calibration seeds"
                                 : "mean ± sample std over seeds";
  std::string name = sweep_dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  name = fs::path(name).filename().string();
  tex.push_back(
      out.summary.latex(name + ": " + spread, options.bold_best ? best : std::vector<int>{}));
  for (size_t i = 0; i < out.pivots.size(); ++i) {
    const auto& pv = out.pivot_specs[i];
    std::vector<int> pb(out.pivots[i].header().size(), 0);
    for (size_t c = pv.rows.size(); c < pb.size(); ++c) pb[c] = eval::metric_direction(pv.value);
    tex.push_back(
        out.pivots[i].latex(metric_header(pv.value) + " by " + pv.column + " (" + spread + ")",
                            options.bold_best ? pb : std::vector<int>{}));
  }
  return tex;
}

// trials.h5: one dataset per column of trials.csv, numeric columns as float64.
void write_trials_h5(const Table& t, const std::string& path) {
  AtomicFile h5out(path);
  {
    auto f = store::h5::File::create(h5out.tmp());
    auto g = store::h5::create_group(f, f.id(), "trials");
    int64_t n = static_cast<int64_t>(t.rows());
    store::h5::write_attr(f, g.id(), "rows", n);
    for (size_t c = 0; c < t.header().size(); ++c) {
      bool numeric = n > 0;
      std::vector<double> nums;
      for (const auto& r : t.data()) {
        char* end = nullptr;
        double v = r[c].empty() ? NAN : std::strtod(r[c].c_str(), &end);
        if (!r[c].empty() && (end == nullptr || *end != '\0')) numeric = false;
        nums.push_back(v);
      }
      if (numeric && t.header()[c] != "trial_id") {
        store::h5::write_dataset(f, g.id(), t.header()[c], {n}, nums.data());
      } else {
        std::vector<std::string> col;
        for (const auto& r : t.data()) col.push_back(r[c]);
        store::h5::write_string_list_dataset(f, g.id(), t.header()[c], col);
      }
    }
    f.close();
  }
  h5out.commit();
}

// <sweep>/aggregate/: summary, trials, failed, pivots (Markdown, CSV, LaTeX), trials.h5.
void write_files(const store::SweepDir& dir, const AggregateResult& out,
                 const std::vector<std::string>& tex) {
  const std::string ad = dir.aggregate_dir();
  fs::create_directories(ad);
  store::write_file_atomic(ad + "/summary.md", out.markdown);
  store::write_file_atomic(ad + "/summary.csv", out.summary.csv());
  store::write_file_atomic(ad + "/trials.csv", out.trials.csv());
  store::write_file_atomic(ad + "/failed.csv", out.failed.csv());
  for (size_t i = 0; i < out.pivots.size(); ++i) {
    store::write_file_atomic(ad + "/pivot" + std::to_string(i) + ".csv", out.pivots[i].csv());
    store::write_file_atomic(ad + "/pivot" + std::to_string(i) + ".md", out.pivots[i].markdown());
  }
  if (!tex.empty()) {
    store::write_file_atomic(ad + "/summary.tex", tex[0]);
    for (size_t i = 0; i < out.pivots.size(); ++i)
      store::write_file_atomic(ad + "/pivot" + std::to_string(i) + ".tex", tex[i + 1]);
  }
  write_trials_h5(out.trials, ad + "/trials.h5");
}

// The summary: one row per group (settings without the seed), each metric's mean ± sd, the
// headline's spread split by source when pooling model seeds, and the missing replicates.
Table summary_table(const std::vector<Group>& groups, const std::vector<std::string>& keys,
                    const std::vector<std::string>& metrics, const std::string& headline, bool pool,
                    std::vector<int>* best) {
  std::vector<std::string> header = keys;
  header.push_back("n");
  best->assign(header.size(), 0);
  for (const auto& m : metrics) {
    header.push_back(metric_header(m));
    best->push_back(eval::metric_direction(m));
  }
  if (pool) {
    header.push_back(metric_header(headline) + " sd models");
    header.push_back(metric_header(headline) + " sd calib");
    best->push_back(0);
    best->push_back(0);
  }
  header.push_back(pool ? "missing (model seed, seed)" : "missing seeds");
  best->push_back(0);
  Table summary(header);
  for (const auto& g : groups) {
    std::vector<std::string> row;
    for (const auto& k : keys)
      row.push_back(g.settings.contains(k) ? display_value(k, g.settings[k]) : "");
    row.push_back(std::to_string(g.done.size()));
    for (const auto& m : metrics) {
      auto it = g.values.find(m);
      row.push_back(cell(m, mean_sd(it == g.values.end() ? std::vector<double>{} : it->second)));
    }
    if (pool) {
      const PooledSpread p = pooled_spread(g.headline_by_model);
      const double k = eval::is_percent_metric(headline) ? 100.0 : 1.0;
      row.push_back(p.between.n > 1 ? format("%.2f", k * p.between.sd) : "-");
      row.push_back(p.within_models > 0 ? format("%.2f", k * p.within) : "-");
    }
    std::string missing;
    for (const auto& s : g.planned)
      if (std::find(g.done.begin(), g.done.end(), s) == g.done.end())
        missing += (missing.empty() ? "" : " ") + s;
    row.push_back(missing.empty() ? "-" : missing);
    summary.add_row(row);
  }
  return summary;
}

/// The trials of a sweep read once: groups of settings (seed excluded) with their metric values,
/// the done trials' table rows and metrics, the failed ones.
struct Collected {
  std::vector<std::string> keys;  // setting keys in first-seen order (seed excluded)
  std::vector<Group> groups;
  std::vector<std::vector<std::string>> trial_rows;  // trial_id, settings, seed
  std::vector<json> trial_metrics;
  std::vector<std::string> trial_metric_names;            // first-seen order
  std::vector<std::pair<int64_t, json>> headline_values;  // per done trial: (model seed, metrics)
  std::vector<eval::TaskMetrics> trial_tasks;  // of the done trials, from their manifests
  Table failed{{"trial_id", "settings", "state", "attempts", "last message"}};
  int done = 0, failed_count = 0, pending = 0;
};

Collected collect_trials(const store::SweepDir& dir, const AggregateOptions& options) {
  auto status = dir.status(dir.max_attempts());
  Collected c;
  for (const auto& [p, st] : status.trials)
    for (const auto& [k, v] : p.settings.items())
      if (k != "seed" && std::find(c.keys.begin(), c.keys.end(), k) == c.keys.end())
        c.keys.push_back(k);
  std::map<std::string, size_t> group_index;
  for (const auto& [p, st] : status.trials) {
    json key = json::object();
    int64_t model_seed = -1;
    for (const auto& [k, v] : p.settings.items()) {
      if (k == "seed") continue;
      if (options.pool_model_seeds && k == "model.path" && v.is_string()) {
        auto [base, ms] = split_model_seed(v.get<std::string>());
        key[k] = base;
        model_seed = ms;
      } else {
        key[k] = v;
      }
    }
    std::string ks = key.dump();
    auto it = group_index.find(ks);
    if (it == group_index.end()) {
      it = group_index.emplace(ks, c.groups.size()).first;
      c.groups.push_back(Group{key, {}, {}, {}, {}});
    }
    Group& g = c.groups[it->second];
    int64_t seed = p.config.value("seed", int64_t{0});
    const std::string replicate =
        model_seed >= 0 && options.pool_model_seeds
            ? "m" + std::to_string(model_seed) + "s" + std::to_string(seed)
            : std::to_string(seed);
    g.planned.push_back(replicate);
    if (st == store::TrialState::kDone) {
      ++c.done;
      auto rec = store::read_trial(dir.trial_path(p.id), false);
      c.trial_tasks.push_back(eval::trial_task_metrics(rec.manifest));
      g.done.push_back(replicate);
      for (const auto& [m, v] : rec.metrics.items())
        if (v.is_number()) g.values[m].push_back(v.get<double>());
      c.headline_values.push_back({model_seed, rec.metrics});
      g.headline_by_model[model_seed];  // filled once the headline is known
      c.headline_values.back().second["__group"] = it->second;
      std::vector<std::string> row = {p.id};
      for (const auto& k : c.keys)
        row.push_back(p.settings.contains(k) ? display_value(k, p.settings[k]) : "");
      row.push_back(std::to_string(seed));
      c.trial_rows.push_back(row);
      c.trial_metrics.push_back(rec.metrics);
      for (const auto& [m, v] : rec.metrics.items())
        if (std::find(c.trial_metric_names.begin(), c.trial_metric_names.end(), m) ==
            c.trial_metric_names.end())
          c.trial_metric_names.push_back(m);
    } else if (st == store::TrialState::kPending || st == store::TrialState::kRunning) {
      ++c.pending;  // not finished yet (a running trial is not a failure)
    } else {
      ++c.failed_count;
      const auto& h = status.history[p.id];
      c.failed.add_row({p.id.substr(0, 12), p.settings.dump(), store::trial_state_name(st),
                        std::to_string(h.failed), h.last_message});
    }
  }
  return c;
}

/// A typo must not silently give a column of "-": every metric asked for must exist (once any
/// trial is done; an unstarted sweep has no metrics yet).
void check_metrics_exist(const std::vector<std::string>& names,
                         const std::vector<std::string>& metrics,
                         const std::vector<PivotSpec>& pivots) {
  if (names.empty()) return;
  auto known = [&](const std::string& m) {
    return std::find(names.begin(), names.end(), m) != names.end();
  };
  auto list = [&] {
    std::string s;
    for (const auto& m : names) s += (s.empty() ? "" : ", ") + m;
    return s;
  };
  for (const auto& m : metrics)
    if (!known(m))
      throw ConfigError("--metrics: '" + m + "' is not a metric of this sweep (metrics: " + list() +
                        ")");
  for (const auto& pv : pivots)
    if (!known(pv.value))
      throw ConfigError("--pivot: metric '" + pv.value + "' is not a metric of this sweep (" +
                        "metrics: " + list() + ")");
}

/// Per-trial table: settings, seed, every metric as a column (sorted names: a stable layout).
Table trials_table(const Collected& c) {
  std::vector<std::string> h = {"trial_id"};
  for (const auto& k : c.keys) h.push_back(k);
  h.push_back("seed");
  for (const auto& m : c.trial_metric_names) h.push_back(m);
  Table t(h);
  for (size_t i = 0; i < c.trial_rows.size(); ++i) {
    auto row = c.trial_rows[i];
    for (const auto& m : c.trial_metric_names) {
      const json& v = c.trial_metrics[i].contains(m) ? c.trial_metrics[i][m] : json();
      row.push_back(v.is_number_float() ? format("%.9g", v.get<double>())
                    : v.is_null()       ? ""
                                        : v.dump());
    }
    t.add_row(row);
  }
  return t;
}

/// The Markdown of `mpq aggregate`: the summary, the pivots, the failed trials.
std::string aggregate_markdown(const AggregateResult& out, const std::string& sweep_dir) {
  std::string md = format(
      "## %s: %d done, %d failed, %d pending\n\nValues: mean ± sample std (ddof=1) over seeds; n = "
      "seeds with a result.\n\n",
      sweep_dir.c_str(), out.done, out.failed_count, out.pending);
  md += out.summary.markdown();
  for (size_t i = 0; i < out.pivots.size(); ++i) {
    const auto& pv = out.pivot_specs[i];
    md += format("\n### %s by %s\n\n", metric_header(pv.value).c_str(), pv.column.c_str());
    md += out.pivots[i].markdown();
  }
  if (out.failed.rows()) md += "\n### failed trials\n\n" + out.failed.markdown();
  return md;
}

}  // namespace

AggregateResult aggregate_sweep(const std::string& sweep_dir, const AggregateOptions& options) {
  store::SweepDir dir(sweep_dir);
  Collected c = collect_trials(dir, options);
  std::sort(c.trial_metric_names.begin(), c.trial_metric_names.end());

  AggregateResult out;
  out.done = c.done;
  out.failed_count = c.failed_count;
  out.pending = c.pending;
  const eval::TaskMetrics task = eval::common_task_metrics(c.trial_tasks, sweep_dir);
  const std::string headline = task.headline;
  for (const auto& [ms, m] : c.headline_values)
    if (m.contains(headline) && m[headline].is_number())
      c.groups[m["__group"].get<size_t>()].headline_by_model[ms].push_back(
          m[headline].get<double>());
  out.task = task;
  out.headline = headline;
  out.setting_keys = c.keys;
  std::vector<std::string> metrics = options.metrics;
  if (metrics.empty()) {  // the task's defaults that the trials have (older files lack some)
    for (const auto& m : task.summary())
      if (std::binary_search(c.trial_metric_names.begin(), c.trial_metric_names.end(), m))
        metrics.push_back(m);
  }
  std::vector<PivotSpec> pivots = options.pivots;
  for (auto& pv : pivots)
    if (pv.value.empty()) pv.value = headline;
  check_metrics_exist(c.trial_metric_names, metrics, pivots);
  out.trials = trials_table(c);

  std::vector<int> best;  // per summary column: +1 higher is better, -1 lower, 0 neither
  out.summary = summary_table(c.groups, c.keys, metrics, headline, options.pool_model_seeds, &best);
  out.failed = c.failed;
  for (const auto& pv : pivots) out.pivots.push_back(pivot_table(pv, c.groups, c.keys));
  out.pivot_specs = pivots;
  out.markdown = aggregate_markdown(out, sweep_dir);

  const std::vector<std::string> tex =
      options.latex ? latex_tables(out, sweep_dir, best, options) : std::vector<std::string>{};
  for (const auto& t : tex) out.latex += t + "\n";
  if (options.write_files) write_files(dir, out, tex);
  return out;
}

}  // namespace mpq::report
