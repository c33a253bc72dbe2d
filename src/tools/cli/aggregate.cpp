// mpq aggregate | report: a sweep's tables (Markdown, CSV, LaTeX) and its report with figures.
#include "mpq/report/aggregate.h"

#include <cstdio>

#include "mpq/report/report.h"
#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {

class Aggregate : public Verb {
 public:
  explicit Aggregate(CLI::App& app)
      : Verb(app.add_subcommand("aggregate",
                                "tables (Markdown, CSV) and a merged trials.csv/.h5 of a sweep")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq aggregate results/default\n"
        "  mpq aggregate results/default --pivot model.path,label:weights.bits:top1\n"
        "  mpq aggregate results/model_seeds --pool-model-seeds --format latex --bold-best\n"
        "Files go to <dir>/aggregate/: summary.md/.csv, trials.csv/.h5, failed.csv, "
        "pivot<i>.md/.csv (and summary.tex, pivot<i>.tex with --format latex).");
    c->add_option("dir", dir_, "sweep results directory")->required();
    c->add_option("--pivot", pivots_,
                  "ROWS:COLUMN[:METRIC], e.g. model.path,label:weights.bits:top1 (repeatable; "
                  "METRIC defaults to the trials' headline: top1, or map_voc07 / map_voc12 for "
                  "detection as eval.voc_metric says)");
    c->add_option("--metrics", metrics_,
                  "metrics of the summary table (default: classification top1 agreement kl "
                  "extra_channels_pct; detection the headline mAP, the other mAP, fidelity_map "
                  "extra_channels_pct)");
    c->add_option("--format", format_,
                  "what to print: markdown, or latex (booktabs tables, also written as .tex)")
        ->check(CLI::IsMember({"markdown", "latex"}));
    c->add_flag("--bold-best", bold_, "LaTeX: the best value of every metric column in bold");
    c->add_flag("--pool-model-seeds", pool_,
                "treat default:<arch>@seed=N models as replicates of default:<arch> (error "
                "bars over training and calibration seeds)");
  }

  int run(int*, char***) override {
    report::AggregateOptions ao;
    if (!metrics_.empty()) ao.metrics = metrics_;
    for (const auto& p : pivots_) ao.pivots.push_back(report::parse_pivot(p));
    ao.pool_model_seeds = pool_;
    ao.latex = format_ == "latex";
    ao.bold_best = bold_;
    auto r = report::aggregate_sweep(dir_, ao);
    std::fputs((ao.latex ? r.latex : r.markdown).c_str(), stdout);
    return kExitOk;
  }

 private:
  std::string dir_, format_ = "markdown";
  std::vector<std::string> pivots_, metrics_;
  bool pool_ = false, bold_ = false;
};

class Report : public Verb {
 public:
  explicit Report(CLI::App& app)
      : Verb(app.add_subcommand(
            "report",
            "figures (PNG, SVG, CSV), tables and conventions of a sweep: report.md and .html")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq report results/default\n"
        "  mpq report results/baselines --overhead channels\n"
        "  mpq report results/model_seeds --pool-model-seeds\n"
        "Writes <dir>/report/: report.md, report.html, and per figure NAME.png, NAME.svg, the "
        "data\n"
        "NAME.csv and the gnuplot script NAME.gp (re-plot with: cd <dir>/report && gnuplot "
        "NAME.gp).\n"
        "See docs/report.md.");
    c->add_option("dir", dir_, "sweep results directory")->required();
    c->add_option("--overhead", overhead_, "x axis of the trade-off figures")
        ->check(CLI::IsMember({"macs", "channels", "weight_bits"}))
        ->capture_default_str();
    c->add_option("--metric", metric_,
                  "y axis (default: the trials' headline: top1, or map_voc07 / map_voc12 for "
                  "detection as eval.voc_metric says)");
    c->add_flag("--pool-model-seeds", pool_,
                "error bars over independently trained default models too "
                "(default:<arch>@seed=N)");
    c->add_option("--detail-bits", bits_,
                  "weight bits of the per-layer multipoint figures (default: 4 if present, "
                  "else the lowest)")
        ->check(CLI::Range(0, 8));
  }

  int run(int*, char***) override {
    report::ReportOptions ro;
    ro.overhead = report::parse_overhead(overhead_);
    ro.metric = metric_;
    ro.pool_model_seeds = pool_;
    ro.detail_bits = bits_;
    auto r = report::write_report(dir_, ro);
    std::printf("report: %s (%zu figures; %s)\n", r.markdown.c_str(), r.figures.size(),
                r.html.c_str());
    return kExitOk;
  }

 private:
  std::string dir_, overhead_ = "macs", metric_;
  bool pool_ = false;
  int bits_ = 0;
};

}  // namespace

void add_aggregate(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Aggregate>(app));
}
void add_report(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Report>(app));
}

}  // namespace mpq::cli
