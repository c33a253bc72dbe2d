// The per-layer figures of one representative multipoint trial per panel, one function per figure
// family (report.h lists them; the error tables are described in docs/trial-file-format.md).
#include <algorithm>
#include <set>
#include <tuple>

#include "mpq/report/report_parts.h"
#include "mpq/report/table.h"

namespace mpq::report::parts {

namespace {

/// The quantized layers of one trial that have a point allocation.
struct LayerSet {
  std::vector<const store::LayerRecord*> layers;
  int K = 1;              // the most points of any layer
  bool have_out = false;  // output-error tables present
  int index = 0;          // figure number
};

/// Relative weight and output error against the number of greedy points (errors-NN).
void errors_figure(const LayerSet& s, Detail& d, std::vector<Figure>* figures) {
  const auto& layers = s.layers;
  const int K = s.K;
  const bool have_out = s.have_out;
  const int index = s.index;
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
    wnorm.push_back(!L->weight_error.empty() && wr > 0 ? col0(L->weight_error) / (wr * wr) : NAN);
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
  std::string one = "set grid\nset logscale y\nset format y \"%g\"\nset xtics 1\nset xrange [0.8:" +
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
  figures->push_back(f);
}

/// Points per channel over the whole network (points-NN).
void points_figure(const LayerSet& s, Detail& d, std::vector<Figure>* figures) {
  const auto& layers = s.layers;
  const int K = s.K;
  const int index = s.index;
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
    f.csv += format("%d,%lld,%s\n", p, static_cast<long long>(hist[static_cast<size_t>(p)]),
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
  d.captions.push_back("Points per output channel over the network's " + std::to_string(total) +
                       " channels — " + d.title);
  figures->push_back(f);
}

/// Points per channel, layer by layer (points-layers-NN).
void points_layers_figure(const LayerSet& s, Detail& d, std::vector<Figure>* figures) {
  const auto& layers = s.layers;
  const int K = s.K;
  const int index = s.index;
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
  f.body = "set title " + gp_string(d.plot_title) +
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
  figures->push_back(f);
}

/// Per-layer error with one point and after allocation (layer-error-NN).
void layer_error_figure(const LayerSet& s, Detail& d, std::vector<Figure>* figures) {
  const auto& layers = s.layers;
  const bool have_out = s.have_out;
  const int index = s.index;
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
  figures->push_back(f);
}

/// Where the budget went: share of extra points against share of MACs (budget-NN).
void budget_figure(const LayerSet& s, Detail& d, std::vector<Figure>* figures) {
  const auto& layers = s.layers;
  const int index = s.index;
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
    f.csv += format(
        "%d,%s,%s,%s,%s,%s\n", L->index, L->attrs.value("name", "").c_str(), csv_number(m).c_str(),
        csv_number(macs_total > 0 ? 100.0 * m / macs_total : NAN).c_str(), csv_number(e).c_str(),
        csv_number(extra_total > 0 ? 100.0 * e / extra_total : 0).c_str());
  }
  const int step = std::max<int>(1, static_cast<int>(layers.size()) / 25);
  f.body = "set title " + gp_string(d.plot_title) +
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
  figures->push_back(f);
}

}  // namespace

int detail_bits(const std::vector<ReportTrial>& trials, int requested) {
  if (requested != 0) return requested;
  std::set<int> mp_bits;
  for (const auto& t : trials)
    if (is_multipoint(t.plan.config)) mp_bits.insert(t.plan.config["weights"].value("bits", 0));
  if (mp_bits.empty()) return 0;
  return mp_bits.count(4) ? 4 : *mp_bits.begin();
}

std::vector<Detail> layer_figures(const store::SweepDir& dir,
                                  const std::vector<ReportTrial>& trials, int bits,
                                  std::vector<Figure>* figures) {
  Ordered<const ReportTrial*> chosen;  // panel -> representative
  auto rank = [](const ReportTrial* t) {
    const auto& mp = t->plan.config["weights"]["multipoint"];
    return std::make_tuple(allocates_by_output_error(t->plan.config) ? 0 : 1,
                           std::fabs(mp.value("budget", 0.0) - 0.10),
                           std::max<int64_t>(t->model_seed, 0), t->seed, t->order);
  };
  for (const auto& t : trials) {
    const auto& w = t.plan.config["weights"];
    if (!is_multipoint(t.plan.config) || w.value("bits", 0) != bits) continue;
    json context = subset(t.key, is_method_key, true);
    const ReportTrial*& c = chosen.at(context.dump());
    if (c == nullptr || rank(&t) < rank(c)) c = &t;
  }
  std::vector<Detail> details;
  int index = 0;
  for (const auto& pk : chosen.order) {
    const ReportTrial* t = chosen.items[pk];
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
    LayerSet s;
    s.index = index;
    for (const auto& L : rec.layers)
      if (L.attrs.value("quantized", 0) != 0 && !L.points_per_channel.empty()) {
        s.layers.push_back(&L);
        s.K = std::max(s.K, L.max_points);
      }
    if (s.layers.empty()) continue;
    s.have_out = std::any_of(s.layers.begin(), s.layers.end(), [](auto* L) {
      return !L->output_error.empty() && L->attrs.contains("output_rel_error_1pt");
    });
    errors_figure(s, d, figures);
    points_figure(s, d, figures);
    points_layers_figure(s, d, figures);
    layer_error_figure(s, d, figures);
    budget_figure(s, d, figures);
    details.push_back(d);
  }
  return details;
}

}  // namespace mpq::report::parts
