// Figure families over all trials of a sweep: the metric against overhead (tradeoff-NN) and
// against weight bits (bits-NN), one figure per panel of the non-method settings, error bars over
// seeds (report.h lists the figures; docs/report.md shows them).
#include <algorithm>
#include <set>

#include "mpq/eval/metrics.h"
#include "mpq/report/aggregate.h"
#include "mpq/report/report_parts.h"
#include "mpq/report/table.h"

namespace mpq::report::parts {

std::vector<Captioned> tradeoff_figures(const std::vector<ReportTrial>& trials,
                                        const FigureContext& c, std::vector<Figure>* figures) {
  const std::string& metric = c.metric;
  const std::string& fp_metric = c.fp_metric;
  const double k = c.scale;
  const std::string xmetric = overhead_metric(c.overhead);
  std::vector<Captioned> captions;
  Ordered<Ordered<Ordered<std::vector<const ReportTrial*>>>> panels;  // panel -> line -> point
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
        for (const ReportTrial* t : ts) {
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
    figures->push_back(line_figure(name, title, overhead_label(c.overhead),
                                   eval::metric_display(metric), series, fp, format("FP %.2f", fp),
                                   false, eval::is_percent_metric(metric)));
    captions.push_back(
        {name, eval::metric_display(metric) + " against " + overhead_label(c.overhead) + " — " +
                   title + " (mean ± std over " +
                   (c.pool_model_seeds ? "training and calibration seeds" : "seeds") + ")"});
  }
  return captions;
}

std::vector<Captioned> bits_figures(const std::vector<ReportTrial>& trials, const FigureContext& c,
                                    std::vector<Figure>* figures) {
  const std::string& metric = c.metric;
  const std::string& fp_metric = c.fp_metric;
  const double k = c.scale;
  std::vector<Captioned> captions;
  Ordered<Ordered<std::map<int, std::vector<const ReportTrial*>>>> panels;
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
        for (const ReportTrial* t : ts) ys.push_back(k * number(t->metrics, metric));
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
        for (const ReportTrial* t : ts)
          if (!fp_metric.empty() && !std::isnan(number(t->metrics, fp_metric))) {
            fp_sum += k * number(t->metrics, fp_metric);
            ++fp_n;
          }
    const double fp = fp_n ? fp_sum / fp_n : NAN;
    const std::string title = title_of(json::parse(pk));
    const std::string name = format("bits-%02d", ++index);
    figures->push_back(line_figure(name, title, "weight bits", eval::metric_display(metric), series,
                                   fp, format("FP %.2f", fp), true,
                                   eval::is_percent_metric(metric)));
    captions.push_back({name, eval::metric_display(metric) + " against weight bits — " + title});
  }
  return captions;
}

}  // namespace mpq::report::parts
