// The shared pieces of `mpq report`: settings seen as method / context / knob, statistics for the
// figures and the line figure (report_parts.h).
#include "mpq/report/report_parts.h"

#include <cmath>

#include "mpq/report/aggregate.h"
#include "mpq/report/statistics.h"
#include "mpq/report/table.h"
#include "mpq/util/error.h"

namespace mpq::report::parts {

namespace {

bool starts_with(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000080", "#808000"};
std::string color(size_t i) {
  return kPalette[i % (sizeof kPalette / sizeof *kPalette)];
}

}  // namespace

bool is_method_key(const std::string& k) {
  return k == "label" || k == "weights.method" || starts_with(k, "weights.multipoint.") ||
         starts_with(k, "weights.ocs.") || starts_with(k, "weights.aciq.") ||
         starts_with(k, "weights.percentile.") || starts_with(k, "weights.bit_alloc.") ||
         k == "weights.search" || k == "weights.first_point";
}

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
bool is_multipoint(const json& config) {
  return config["weights"].value("method", "") == "multipoint";
}

bool allocates_by_output_error(const json& config) {
  return config["weights"]["multipoint"].value("policy", "budget") == "budget";
}

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

MeanStd mean_std(const std::vector<double>& xs) {
  const MeanSd s = mean_sd(xs);
  MeanStd r;
  r.n = s.n;
  r.mean = s.mean;
  r.std = s.error_bar();
  return r;
}

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

std::string overhead_metric(Overhead o) {
  switch (o) {
    case Overhead::kMacs:
      return "extra_macs_pct";
    case Overhead::kChannels:
      return "extra_channels_pct";
    case Overhead::kWeightBits:
      break;
  }
  return "extra_weight_bits_pct";
}

std::string overhead_label(Overhead o) {
  switch (o) {
    case Overhead::kMacs:
      return "extra MACs (%)";
    case Overhead::kChannels:
      return "extra output channels (%)";
    case Overhead::kWeightBits:
      break;
  }
  return "extra weight bits (%)";
}

}  // namespace mpq::report::parts

namespace mpq::report {

Overhead parse_overhead(const std::string& o) {
  if (o == "macs") return Overhead::kMacs;
  if (o == "channels") return Overhead::kChannels;
  if (o == "weight_bits") return Overhead::kWeightBits;
  throw ConfigError("--overhead " + o + ": expected macs, channels or weight_bits");
}

}  // namespace mpq::report
