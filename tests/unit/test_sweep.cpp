// Unit tests of sweep/: the pieces ranks exchange and how an evaluation is split.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "helpers.h"
#include "mpq/store/ledger.h"
#include "mpq/sweep/fp_check.h"
#include "mpq/sweep/mpi_distribution.h"
#include "mpq/sweep/runner.h"
#include "mpq/sweep/serialize.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"
#include "tolerances.h"
#include "torch_catch.h"

using namespace mpq;
namespace tol = mpq::test::tol;

TEST_CASE("layer outcomes and tables survive the rank exchange field by field", "[sweep]") {
  ptq::LayerOutcome o;
  o.quantized = true;
  auto& q = o.q;
  q.bits = 3;
  q.c_out = 2;
  q.d = 6;
  q.max_points = 2;
  q.points = {1, 2};
  q.codes = {1, -2, 3, 0, 0, 3, -3, 1, 2, 0, 1, 1, 0, 0, 1, -1, 2, 3};
  q.scales = {0.5f, 0.25f, 0.125f};
  q.point_channel = {0, 1, 1};
  q.weight_error = {1.f, 0.5f, 2.f, 0.25f};
  q.output_error = {3.f, 1.f, 4.f, 2.f};
  q.grant_order = {-1, -1, -1, 0};
  q.channel_bits = {3, 4};
  q.ocs_source = {1, 0};  // two split input channels of a 1x... kernel
  q.ocs_k = 2;
  o.attrs = {{"step", 0.5}, {"method", "ocs"}};
  std::string buf;
  sweep::write_outcome(buf, o);
  sweep::write_int(buf, 42);
  size_t pos = 0;
  const ptq::LayerOutcome r = sweep::read_outcome(buf, pos);
  CHECK(sweep::read_int(buf, pos) == 42);
  CHECK(pos == buf.size());
  CHECK(r.quantized);
  CHECK(r.q.bits == q.bits);
  CHECK(r.q.c_out == q.c_out);
  CHECK(r.q.d == q.d);
  CHECK(r.q.max_points == q.max_points);
  CHECK(r.q.points == q.points);
  CHECK(r.q.codes == q.codes);
  CHECK(r.q.scales == q.scales);
  CHECK(r.q.point_channel == q.point_channel);
  CHECK(r.q.weight_error == q.weight_error);
  CHECK(r.q.output_error == q.output_error);
  CHECK(r.q.grant_order == q.grant_order);
  CHECK(r.q.channel_bits == q.channel_bits);
  CHECK(r.q.ocs_source == q.ocs_source);
  CHECK(r.q.ocs_k == q.ocs_k);
  CHECK(r.q.original_d() == 2);
  CHECK(r.attrs == o.attrs);

  quant::LayerTables t;
  t.c_out = 2;
  t.K = 2;
  t.point_cost_macs = 123.5;
  t.weight_error = {1, 2, 3, 4};
  t.output_error = {5, 6, 7, 8};
  t.weight_energy = {9, 10};
  t.output_energy = {11, 12};
  std::string tb;
  sweep::write_tables(tb, t);
  pos = 0;
  const auto rt = sweep::read_tables(tb, pos);
  CHECK(pos == tb.size());
  CHECK(rt.c_out == t.c_out);
  CHECK(rt.K == t.K);
  CHECK(rt.point_cost_macs == t.point_cost_macs);
  CHECK(rt.weight_error == t.weight_error);
  CHECK(rt.output_error == t.output_error);
  CHECK(rt.weight_energy == t.weight_energy);
  CHECK(rt.output_energy == t.output_energy);
}

TEST_CASE("evaluation shards are batch-aligned, cover every example once, in order", "[sweep]") {
  for (int64_t n : {0, 1, 7, 64, 65, 1000}) {
    for (int64_t batch : {1, 8, 64, 256}) {
      for (int size : {1, 2, 3, 8}) {
        int64_t next = 0;
        for (int rank = 0; rank < size; ++rank) {
          const auto [b, e] = sweep::eval_shard(n, batch, rank, size);
          INFO("n " << n << " batch " << batch << " rank " << rank << "/" << size);
          CHECK(b == next);  // contiguous, in rank order
          CHECK(e >= b);
          // Every batch a rank runs starts where the single-process run starts one: the same
          // images go through the network together (their logits may depend on the batch).
          CHECK(b % batch == 0);
          next = e;
        }
        CHECK(next == n);
      }
    }
  }
}

TEST_CASE("the FP check compares a detector's published mAP in the trial's headline", "[sweep]") {
  const nlohmann::json meta = {
      {"published", {{"VOC2007-test", {{"map_voc07", 68.1}, {"map_voc12", 70.4}}}}}};
  auto r07 = sweep::published_reference(meta, "voc", "2007", "map_voc07");
  auto r12 = sweep::published_reference(meta, "voc", "2007", "map_voc12");
  REQUIRE(r07);
  REQUIRE(r12);
  CHECK(r07->metric == "map_voc07");
  CHECK(r07->value == 68.1);  // copied, not computed
  CHECK(r12->metric == "map_voc12");
  CHECK(r12->source == "VOC2007-test map_voc12");
  // Only the other metric published: that one, named as such.
  const nlohmann::json only07 = {{"published", {{"VOC2007-test", {{"map_voc07", 68.1}}}}}};
  CHECK(sweep::published_reference(only07, "voc", "2007", "map_voc12")->metric == "map_voc07");
  CHECK_FALSE(sweep::published_reference(only07, "voc", "2012", "map_voc07"));
  const nlohmann::json imagenet = {{"published", {{"ImageNet-1K", {{"acc@1", 69.758}}}}}};
  CHECK(sweep::published_reference(imagenet, "imagenet", "", "top1")->metric == "top1");
}

// ---- identity, expansion, distribution, ledger (sweep/ had no unit tests for these) -----------

namespace {
nlohmann::json resolved(const nlohmann::json& user) {
  return sweep::resolve_trial_config(user, "test");
}
std::string id_of(const nlohmann::json& user, const std::string& model = "m",
                  const std::string& data = "d") {
  return sweep::trial_id(sweep::parse_trial_config(resolved(user)), model, data);
}
}  // namespace

TEST_CASE("trial identity: what cannot change a result leaves the id alone", "[sweep]") {
  const nlohmann::json base = {{"model", {{"path", "default:resnet20"}}},
                               {"weights", {{"method", "rtn"}, {"bits", 4}}}};
  const std::string id = id_of(base);
  CHECK(id.size() == 64);
  CHECK(id == id_of(base));  // canonical: the same config, the same id
  auto with = [&](const nlohmann::json& patch) {
    nlohmann::json u = base;
    u.merge_patch(patch);
    return id_of(u);
  };
  // Paths, threads, labels, loaders, caches, the evaluation engine: the same trial.
  CHECK(with({{"model", {{"path", "elsewhere.pt"}}}}) == id);
  CHECK(with({{"threads", 7}}) == id);
  CHECK(with({{"label", "another name"}}) == id);
  CHECK(with({{"data", {{"batch_size", 17}, {"workers", 3}}}}) == id);
  CHECK(with({{"calibration", {{"cache_dir", "/x"}}}}) == id);
  CHECK(with({{"eval", {{"engine", "hooked"}}}}) == id);
  // Options of a method the trial does not use.
  CHECK(with({{"weights", {{"gptq", {{"damp", 0.1}}}}}}) == id);
  CHECK(with({{"weights", {{"multipoint", {{"budget", 0.3}}}}}}) == id);
  // What changes the result changes the id; so do the model's and the data's content.
  CHECK(with({{"weights", {{"bits", 3}}}}) != id);
  CHECK(with({{"seed", 5}}) != id);
  CHECK(with({{"model", {{"equalize", {{"enabled", true}}}}}}) != id);
  CHECK(id_of(base, "other model") != id);
  CHECK(id_of(base, "m", "other data") != id);
  // A method's options count once it is used, also as multipoint's first point.
  const nlohmann::json gptq = {{"weights", {{"method", "gptq"}}}};
  nlohmann::json g2 = gptq;
  g2["weights"]["gptq"] = {{"damp", 0.1}};
  CHECK(id_of(gptq) != id_of(g2));
  nlohmann::json mp = {
      {"weights", {{"method", "multipoint"}, {"multipoint", {{"first_point", "gptq"}}}}}};
  nlohmann::json mp2 = mp;
  mp2["weights"]["gptq"] = {{"damp", 0.1}};
  CHECK(id_of(mp) != id_of(mp2));
}

TEST_CASE("'uses calibration data': which trials do, and the identity follows", "[sweep]") {
  const std::vector<std::pair<nlohmann::json, bool>> cases = {
      {{{"weights", {{"method", "rtn"}}}}, false},
      {{{"weights", {{"method", "mse"}}}}, false},
      {{{"weights", {{"method", "ocs"}}}}, false},
      {{{"weights", {{"method", "multipoint"}}}}, true},
      {{{"weights", {{"method", "gptq"}}}}, true},
      {{{"weights", {{"method", "adaround"}}}}, true},
      {{{"weights", {{"method", "bit_alloc"}}}}, true},  // ranks channels by output error
      {{{"weights", {{"method", "bit_alloc"}, {"bit_alloc", {{"metric", "weight"}}}}}}, false},
      {{{"weights", {{"method", "rtn"}}}, {"activations", {{"bits", 8}}}}, true},
      {{{"weights", {{"method", "rtn"}}}, {"bias_correction", true}}, true},
  };
  for (const auto& [u, uses] : cases) {
    INFO(u.dump());
    const auto r = resolved(u);
    CHECK(sweep::parse_trial_config(r).uses_calibration_data() == uses);
    // The calibration block is part of the identity exactly when calibration data is used.
    nlohmann::json other = u;
    other["calibration"] = {{"size", 17}};
    CHECK((id_of(u) != id_of(other)) == uses);
  }
}

TEST_CASE("sweep expansion: axes in order, variants and zips, settings recorded", "[sweep]") {
  const nlohmann::json doc = {
      {"name", "t"},
      {"base", {{"weights", {{"method", "rtn"}}}}},
      {"axes",
       {{{"key", "weights.bits"}, {"values", {4, 3}}},
        {{"zip",
          {{{"key", "weights.granularity"}, {"values", {"per_layer", "per_channel"}}},
           {{"key", "activations.bits"}, {"values", {32, 8}}}}}},
        {{"variants",
          {{{"label", "RTN"}}, {{"label", "MP"}, {"weights", {{"method", "multipoint"}}}}}}}}},
      {"seeds", {0, 1}}};
  const auto spec = sweep::parse_sweep(doc, "t.json");
  REQUIRE(spec.trials.size() == 2 * 2 * 2 * 2);
  const auto& first = spec.trials.front();
  CHECK(first.settings["weights.bits"] == 4);
  CHECK(first.settings["weights.granularity"] == "per_layer");
  CHECK(first.settings["activations.bits"] == 32);
  CHECK(first.settings["label"] == "RTN");
  CHECK(first.config["weights"]["bits"] == 4);
  for (size_t i = 0; i < spec.trials.size(); ++i) {
    const auto& t = spec.trials[i];
    CHECK(t.index == static_cast<int>(i));
    // The zip pairs values position by position.
    CHECK((t.config["weights"]["granularity"] == "per_layer") ==
          (t.config["activations"]["bits"] == 32));
    CHECK((t.settings["label"] == "MP") == (t.config["weights"]["method"] == "multipoint"));
  }
  // A zip of unequal lengths is a config error naming the axis.
  nlohmann::json bad = doc;
  bad["axes"][1]["zip"][1]["values"] = {32};
  CHECK_THROWS_WITH(sweep::parse_sweep(bad, "t.json"), Catch::Contains("t.json"));
}

TEST_CASE("layer assignment (LPT): every layer once, load within the list-scheduling bound",
          "[sweep]") {
  const std::vector<double> cost = {9, 1, 8, 2, 7, 3, 6, 4, 5, 5, 0.5, 12};
  for (int ranks : {1, 2, 3, 5, 20}) {
    const auto owner = sweep::lpt_assignment(cost, ranks);
    REQUIRE(owner.size() == cost.size());
    std::vector<double> load(static_cast<size_t>(ranks), 0.0);
    double total = 0, biggest = 0;
    for (size_t i = 0; i < cost.size(); ++i) {
      REQUIRE(owner[i] >= 0);
      REQUIRE(owner[i] < ranks);
      load[static_cast<size_t>(owner[i])] += cost[i];
      total += cost[i];
      biggest = std::max(biggest, cost[i]);
    }
    // Graham: a greedy list schedule ends by total / m + the largest job.
    const double makespan = *std::max_element(load.begin(), load.end());
    CHECK(makespan <= total / ranks + biggest);
    CHECK(sweep::lpt_assignment(cost, ranks) == owner);  // deterministic
  }
  // Ties go to the lowest rank: equal costs deal out round robin.
  const std::vector<int> round_robin = {0, 1, 0, 1};
  CHECK(sweep::lpt_assignment({1, 1, 1, 1}, 2) == round_robin);
}

TEST_CASE("ledger folding: started, done, failed counted per trial, last message kept", "[store]") {
  const std::vector<nlohmann::json> records = {
      {{"trial", "a"}, {"event", "started"}},
      {{"trial", "a"}, {"event", "failed"}, {"message", "first"}},
      {{"trial", "a"}, {"event", "started"}},
      {{"trial", "a"}, {"event", "failed"}, {"message", "second"}},
      {{"trial", "b"}, {"event", "started"}},
      {{"trial", "b"}, {"event", "done"}},
      {{"event", "started"}},                  // no trial: ignored
      {{"trial", 7}, {"event", "done"}},       // not a string: ignored
      {{"trial", "c"}, {"event", "unknown"}},  // counted nowhere, but known
  };
  const auto h = store::fold_ledger(records);
  CHECK(h.size() == 3);
  CHECK(h.at("a").started == 2);
  CHECK(h.at("a").failed == 2);
  CHECK(h.at("a").done == 0);
  CHECK(h.at("a").last_message == "second");
  CHECK(h.at("b").done == 1);
  CHECK(h.at("b").failed == 0);
  CHECK(h.at("c").started + h.at("c").done + h.at("c").failed == 0);
}

// ---- the FP reference check (fp_check.h) ------------------------------------------------------

TEST_CASE("FP check: Wilson interval, pass/fail on the full split, subsets only reported",
          "[sweep]") {
  // 50 of 100: the textbook 95% Wilson interval is [40.38, 59.62] (given to 2 decimals, hence
  // the 0.01-point tolerance).
  const auto [lo, hi] = sweep::wilson_interval(0.5, 100);
  CHECK(lo == Approx(40.38).margin(0.01));
  CHECK(hi == Approx(59.62).margin(0.01));
  // Properties for any p and n: the interval holds p, stays in [0, 100], narrows as n grows.
  for (double p : {0.0, 0.013, 0.5, 0.7613, 1.0}) {
    double width = 200;
    for (int64_t n : {10, 1000, 50000}) {
      const auto [l, h] = sweep::wilson_interval(p, n);
      CHECK(l >= -tol::kFloat64 * 100);
      CHECK(h <= 100 + tol::kFloat64 * 100);
      CHECK(l <= 100 * p + tol::kFloat64 * 100);
      CHECK(h >= 100 * p - tol::kFloat64 * 100);
      CHECK(h - l < width);
      width = h - l;
    }
  }
  CHECK(std::isnan(sweep::wilson_interval(0.5, 0).first));

  const sweep::FpReference top1{"top1", 69.758, "ImageNet-1K acc@1"};
  using Outcome = sweep::FpCheck::Outcome;
  CHECK(sweep::judge_fp(top1, 69.70, 50000, true, 0.1).outcome == Outcome::kPass);
  CHECK(sweep::judge_fp(top1, 69.60, 50000, true, 0.1).outcome == Outcome::kFail);
  CHECK(sweep::judge_fp(top1, 69.60, 50000, true, 0.2).outcome == Outcome::kPass);
  const auto sub = sweep::judge_fp(top1, 60.0, 500, false, 0.1);  // far off, but a subset
  CHECK(sub.outcome == Outcome::kSubset);
  CHECK(sub.ci_low < 60.0);
  CHECK(sub.ci_high > 60.0);
  CHECK_THAT(sub.message, Catch::Contains("published value OUTSIDE"));
  const sweep::FpReference map{"map_voc07", 68.1, "VOC2007-test map_voc07"};
  const auto m = sweep::judge_fp(map, 50.0, 100, false, 0.1);
  CHECK(m.outcome == Outcome::kSubset);
  CHECK(std::isnan(m.ci_low));  // no interval for mAP
  CHECK(m.to_json()["outcome"] == "subset");
  CHECK(sweep::judge_fp(map, 68.1, 4952, true, 0.1).to_json()["outcome"] == "pass");
}

TEST_CASE("FP check: the published reference an archive's metadata holds", "[sweep]") {
  const nlohmann::json meta = {{"published",
                                {{"ImageNet-1K", {{"acc@1", 71.878}}},
                                 {"VOC2007-test", {{"map_voc07", 68.1}, {"map_voc12", 70.2}}}}}};
  auto r = sweep::published_reference(meta, "imagenet", "", "map_voc07");
  REQUIRE(r.has_value());
  CHECK(r->metric == "top1");
  CHECK(r->value == 71.878);  // copied, not computed
  r = sweep::published_reference(meta, "voc", "2007", "map_voc12");
  REQUIRE(r.has_value());
  CHECK(r->metric == "map_voc12");  // the trial's headline first
  r = sweep::published_reference(meta, "voc", "2007", "map_voc07");
  REQUIRE(r.has_value());
  CHECK(r->metric == "map_voc07");
  const nlohmann::json only12 = {{"published", {{"VOC2007-test", {{"map_voc12", 70.2}}}}}};
  r = sweep::published_reference(only12, "voc", "2007", "map_voc07");
  REQUIRE(r.has_value());
  CHECK(r->metric == "map_voc12");  // the other one when the headline is missing
  CHECK_FALSE(sweep::published_reference(meta, "voc", "2012", "map_voc07").has_value());
  CHECK_FALSE(sweep::published_reference(meta, "fashion-mnist", "", "map_voc07").has_value());
  CHECK_FALSE(sweep::published_reference(nlohmann::json::object(), "imagenet", "").has_value());
}

TEST_CASE("plan_trials: ids from the typed config and the model and data fingerprints", "[sweep]") {
  // A real model file and a real image_folder tree (two classes of one JPEG each, the image the
  // bad-input tests use; installed by scripts/install-deps.sh --with-python).
  namespace fs = std::filesystem;
  const std::string img = "/usr/share/darknet/data/dog.jpg";
  INFO(img + " comes with scripts/install-deps.sh --with-python (Debian's darknet)");
  REQUIRE(fs::exists(img));
  const std::string dir = "/tmp/mpq_test_plan";
  fs::remove_all(dir);
  for (const char* c : {"a", "b"}) {
    fs::create_directories(dir + "/img/" + c);
    fs::copy_file(img, dir + "/img/" + c + "/1.JPEG");
  }
  const std::string model = test::save_zoo_model("resnet20", dir + "/m.pt");
  fs::copy_file(model, dir + "/copy.pt");  // the same bytes under another name
  const nlohmann::json base = {{"model", {{"path", model}}},
                               {"data",
                                {{"name", "image_folder"},
                                 {"root", dir + "/img"},
                                 {"preprocess", {{"preset", "fashion-mnist"}, {"crop", 28}}},
                                 {"cache", false}}},
                               {"weights", {{"method", "rtn"}}}};
  auto spec = sweep::parse_sweep(
      {{"name", "p"}, {"base", base}, {"axes", {{{"key", "weights.bits"}, {"values", {4, 3}}}}}},
      "test");
  sweep::TrialContext ctx;
  const auto plan = sweep::plan_trials(spec, &ctx);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].id != plan[1].id);
  for (const auto& p : plan) {
    const auto cfg = sweep::parse_trial_config(p.config);
    CHECK(p.id == sweep::trial_id(cfg, sha256_file(model), sweep::data_identity(cfg, ctx)));
  }
  // The same model file content under two paths is the same trial: an error naming both.
  spec = sweep::parse_sweep(
      {{"name", "p"},
       {"base", base},
       {"axes", {{{"key", "model.path"}, {"values", {model, dir + "/copy.pt"}}}}}},
      "test");
  CHECK_THROWS_WITH(sweep::plan_trials(spec), Catch::Contains("are the same trial"));
}
