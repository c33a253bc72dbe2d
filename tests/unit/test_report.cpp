// Aggregation over independently trained models (--pool-model-seeds) on a real sweep directory:
// a plan and trial files written by mpq's own writers, metrics chosen so that every number of
// the pooled row can be computed by hand.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "mpq/report/aggregate.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"

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
  CHECK(mpq::report::metric_direction("top1") == 1);
  CHECK(mpq::report::metric_direction("kl") == -1);
  CHECK(mpq::report::metric_direction("extra_macs_pct") == 0);
  CHECK(mpq::report::metric_direction("fp_top1") == 0);
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
