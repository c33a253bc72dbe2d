// Aggregation over independently trained models (--pool-model-seeds) on a real sweep directory:
// a plan and trial files written by mpq's own writers, metrics chosen so that every number of
// the pooled row can be computed by hand.
#include <cmath>
#include <filesystem>

#include "catch.h"
#include "mpq/eval/metrics.h"
#include "mpq/report/aggregate.h"
#include "mpq/report/statistics.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "tolerances.h"

namespace tol = mpq::test::tol;

namespace fs = std::filesystem;
using nlohmann::json;

TEST_CASE("default model references split into architecture and training seed", "[report]") {
  using mpq::report::split_model_seed;
  CHECK(split_model_seed("default:resnet20@seed=2") ==
        std::pair<std::string, int64_t>{"default:resnet20", 2});
  CHECK(split_model_seed("default:resnet20") ==
        std::pair<std::string, int64_t>{"default:resnet20", 0});
  CHECK(split_model_seed("models/r18.pt").second == -1);
  CHECK(split_model_seed("default:resnet20@seed=x").second == -1);
}

TEST_CASE("pooling model seeds: mean ± std over all replicates, spread split by source",
          "[report]") {
  const std::string d = "/tmp/mpq_test_report_pool";
  fs::remove_all(d);
  mpq::store::SweepDir dir(d);
  json doc = {{"name", "pool"}};
  dir.init(doc, "f", false);
  // top1 = 0.5 + 0.1 * model_seed + 0.01 * seed, model seeds {0, 1, 2} x seeds {0, 1}.
  std::vector<mpq::store::PlannedTrial> plan;
  for (int ms = 0; ms < 3; ++ms)
    for (int s = 0; s < 2; ++s) {
      mpq::store::PlannedTrial p;
      p.id = "t" + std::to_string(ms) + std::to_string(s);
      const std::string model =
          ms == 0 ? "default:resnet20" : "default:resnet20@seed=" + std::to_string(ms);
      p.settings = {{"model.path", model}, {"weights.bits", 4}, {"seed", s}};
      p.config = {{"seed", s}};
      plan.push_back(p);
      mpq::store::TrialRecord r;
      r.trial_id = p.id;
      r.config = p.config;
      r.metrics = {{"top1", 0.5 + 0.1 * ms + 0.01 * s},
                   {"agreement", 1.0},
                   {"kl", 0.0},
                   {"extra_channels_pct", 0.0}};
      mpq::store::write_trial(dir.trial_path(p.id), r);
    }
  dir.write_plan(plan);

  mpq::report::AggregateOptions o;
  o.write_files = false;
  o.pool_model_seeds = true;
  o.latex = true;
  auto a = mpq::report::aggregate_sweep(d, o);
  REQUIRE(a.summary.rows() == 1);
  const auto& h = a.summary.header();
  const auto& row = a.summary.data()[0];
  auto col = [&](const std::string& name) {
    for (size_t i = 0; i < h.size(); ++i)
      if (h[i] == name) return row[i];
    FAIL("no column " << name);
    return std::string();
  };
  CHECK(col("model.path") == "resnet20");
  CHECK(col("n") == "6");
  // Mean 0.605; sample std of {0.50, 0.51, 0.60, 0.61, 0.70, 0.71}.
  double sd = 0;
  for (double x : {0.50, 0.51, 0.60, 0.61, 0.70, 0.71}) sd += (x - 0.605) * (x - 0.605);
  sd = std::sqrt(sd / 5);
  char expect[64];
  std::snprintf(expect, sizeof expect, "60.50 ± %.2f", 100 * sd);
  CHECK(col("top1 %") == expect);
  CHECK(col("top1 % sd models") == "10.00");  // sd of {50.5, 60.5, 70.5}
  CHECK(col("top1 % sd calib") == "0.71");    // sd of {x, x + 1} = 0.707
  CHECK(col("missing (model seed, seed)") == "-");
  CHECK(a.latex.find("$60.50 \\pm") != std::string::npos);

  // Without pooling: one row per model.
  o.pool_model_seeds = false;
  CHECK(mpq::report::aggregate_sweep(d, o).summary.rows() == 3);
  fs::remove_all(d);
}

namespace {
// A sweep of two trials (label_offset 1 and 0) whose manifests record `tasks` and `headlines`.
std::string detection_sweep(const std::string& d, const std::vector<std::string>& tasks,
                            const std::vector<std::string>& headlines) {
  fs::remove_all(d);
  mpq::store::SweepDir dir(d);
  dir.init(json{{"name", "det"}}, "f", false);
  std::vector<mpq::store::PlannedTrial> plan;
  for (size_t i = 0; i < headlines.size(); ++i) {
    mpq::store::PlannedTrial p;
    p.id = "d" + std::to_string(i);
    p.settings = {{"eval.label_offset", static_cast<int>(1 - i)}, {"weights.bits", 4}, {"seed", 0}};
    p.config = {{"seed", 0}};
    plan.push_back(p);
    mpq::store::TrialRecord r;
    r.trial_id = p.id;
    r.config = p.config;
    r.manifest = {{"task", tasks[i]}, {"detection_headline", headlines[i]}};
    r.metrics = {{"map_voc07", 0.25 + 0.5 * i},
                 {"map_voc12", 0.125 + 0.5 * i},
                 {"fidelity_map", 1.0},
                 {"extra_channels_pct", 0.0},
                 {"top1", 0.5},
                 {"agreement", 1.0},
                 {"kl", 0.0}};
    mpq::store::write_trial(dir.trial_path(p.id), r);
  }
  dir.write_plan(plan);
  return d;
}
}  // namespace

TEST_CASE("the trials' recorded headline leads aggregation, not the metric names", "[report]") {
  mpq::report::AggregateOptions o;
  o.write_files = false;
  o.pivots = {mpq::report::parse_pivot("weights.bits:eval.label_offset")};  // metric: the headline
  SECTION("eval.voc_metric=voc12: map_voc12 first and in the pivot") {
    auto a = mpq::report::aggregate_sweep(
        detection_sweep("/tmp/mpq_test_report_v12", {"detection", "detection"},
                        {"map_voc12", "map_voc12"}),
        o);
    CHECK(a.headline == "map_voc12");
    CHECK(a.task.task == mpq::data::Task::kDetection);
    const auto& h = a.summary.header();
    REQUIRE(h.size() > 3);
    CHECK(h[3] == "map_voc12 %");  // eval.label_offset, weights.bits, n, then the headline
    CHECK(h[4] == "map_voc07 %");
    CHECK(a.summary.data()[0][3] == "12.50");  // label_offset 1: trial d0
    CHECK(a.pivot_specs[0].value == "map_voc12");
  }
  SECTION("trials disagreeing on the headline fall back to the task's default") {
    auto a = mpq::report::aggregate_sweep(
        detection_sweep("/tmp/mpq_test_report_mixed", {"detection", "detection"},
                        {"map_voc12", "map_voc07"}),
        o);
    CHECK(a.headline == "map_voc07");
  }
  SECTION("a detection sweep is detection even where classification metrics exist") {
    // The metrics of detection_sweep include top1: the old guess by metric names would not care,
    // the manifest decides.
    auto a = mpq::report::aggregate_sweep(
        detection_sweep("/tmp/mpq_test_report_v07", {"detection", "detection"},
                        {"map_voc07", "map_voc07"}),
        o);
    CHECK(a.summary.header()[3] == "map_voc07 %");
    CHECK(a.summary.header()[5] == "fidelity_map %");
  }
  SECTION("mixed tasks are an error naming the sweep") {
    CHECK_THROWS_WITH(mpq::report::aggregate_sweep(detection_sweep("/tmp/mpq_test_report_task",
                                                                   {"detection", "classification"},
                                                                   {"map_voc07", "map_voc07"}),
                                                   o),
                      Catch::Contains("mpq_test_report_task: mixes detection and classification"));
  }
  SECTION("an unknown headline in a manifest is named") {
    CHECK_THROWS_WITH(
        mpq::report::aggregate_sweep(
            detection_sweep("/tmp/mpq_test_report_bad", {"detection", "detection"},
                            {"map_coco", "map_coco"}),
            o),
        Catch::Contains("manifest/detection_headline: expected map_voc07 or map_voc12"));
  }
}

TEST_CASE("metric table: direction, percent, display; the summary line leads with the headline",
          "[report]") {
  using namespace mpq::eval;
  CHECK(metric_direction("top1") == 1);
  CHECK(metric_direction("map_voc12") == 1);
  CHECK(metric_direction("kl") == -1);
  CHECK(metric_direction("weight_rel_error") == -1);
  CHECK(metric_direction("fp_top1") == 0);
  CHECK(metric_direction("extra_macs_pct") == 0);
  CHECK(is_percent_metric("fidelity_map"));
  CHECK_FALSE(is_percent_metric("extra_channels_pct"));
  CHECK(metric_display("map_voc12") == "mAP@0.5, VOC12 area (%)");
  CHECK(metric_display("n_eval") == "n_eval");
  TaskMetrics t = task_metrics(mpq::data::Task::kDetection);
  t.headline = "map_voc12";
  const json m = {{"map_voc07", 0.5}, {"map_voc12", 0.625}, {"fp_map_voc12", 0.75}};
  CHECK(summarize_metrics(t, m).rfind("mAP VOC12 62.50% (FP 75.00%), VOC07 50.00%", 0) == 0);
  CHECK(summarize_metrics(task_metrics(mpq::data::Task::kDetection), m)
            .rfind("mAP VOC07 50.00%", 0) == 0);
  CHECK(trial_task_metrics(json::object()).task == mpq::data::Task::kClassification);
}

TEST_CASE("statistics: NaNs are missing observations, sd needs two", "[report]") {
  using mpq::report::mean_sd;
  const auto s = mean_sd({1.0, NAN, 3.0});
  CHECK(s.n == 2);
  CHECK(s.mean == 2.0);  // (1 + 3) / 2, exact in binary
  CHECK(s.sd == Approx(std::sqrt(2.0)).epsilon(tol::kFloat64Few));
  const auto one = mean_sd({5.0});
  CHECK(one.n == 1);
  CHECK(std::isnan(one.sd));      // tables print "-"
  CHECK(one.error_bar() == 0.0);  // figures draw none
  CHECK(mean_sd({}).n == 0);
  CHECK(std::isnan(mean_sd({NAN}).mean));
  // Pooling: models {0: 1, 3}, {1: 5}, {2: NaN}: between over the means {2, 5}, within from model
  // 0.
  const auto p = mpq::report::pooled_spread({{0, {1.0, 3.0}}, {1, {5.0}}, {2, {NAN}}});
  CHECK(p.between.n == 2);
  CHECK(p.between.sd == Approx(std::sqrt(4.5)).epsilon(tol::kFloat64Few));
  CHECK(p.within_models == 1);
  CHECK(p.within == Approx(std::sqrt(2.0)).epsilon(tol::kFloat64Few));
}
