// The pieces of the real-network path (issue 32) against hand computations: fidelity metrics on
// unlabelled data (top-5 agreement, output SQNR), the FP check's labelled-sample judgement
// (binomial tail), the manifest datasets (imagenet_samples, photos) and their errors, and the
// pretrained table (names, presets, the "auto" preset of a pretrained model).
#include <cmath>
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "mpq/data/factory.h"
#include "mpq/data/manifest_datasets.h"
#include "mpq/data/preprocess.h"
#include "mpq/eval/classification.h"
#include "mpq/eval/metrics.h"
#include "mpq/sweep/fp_check.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/train/pretrained.h"
#include "mpq/util/error.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;
using namespace mpq;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A 4x3 binary PPM (a format every image decoder of torchvision's list reads).
void write_ppm(const std::string& path, uint8_t value) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n4 3\n255\n";
  for (int i = 0; i < 4 * 3 * 3; ++i) out.put(static_cast<char>(value + i));
}

void write_json(const std::string& path, const json& j) {
  std::ofstream(path) << j.dump(1);
}

data::FileDatasetOptions no_resize() {
  data::FileDatasetOptions o;
  o.preprocess = data::preprocess_preset("none");
  return o;
}

}  // namespace

TEST_CASE("fidelity metrics: top-5 agreement counts the FP top-1 among the 5 largest, SQNR pools",
          "[eval]") {
  // 3 examples, 6 classes. FP top-1: 0, 5, 2.
  eval::EvalShard q, fp;
  q.n = fp.n = 3;
  fp.tensors["logits"] = torch::tensor({{9.f, 1.f, 2.f, 3.f, 4.f, 5.f},
                                        {0.f, 1.f, 2.f, 3.f, 4.f, 8.f},
                                        {1.f, 1.f, 7.f, 1.f, 1.f, 1.f}});
  // Example 0: FP's class 0 ranks 5th of 6 (agree5 yes, agree no); example 1: class 5 is last
  // (neither); example 2: the same arg-max (both).
  q.tensors["logits"] = torch::tensor({{2.f, 6.f, 5.f, 4.f, 3.f, 1.f},
                                       {6.f, 5.f, 4.f, 3.f, 2.f, 0.f},
                                       {1.f, 1.f, 6.f, 1.f, 2.f, 1.f}});
  q.tensors["labels"] = fp.tensors["labels"] = torch::tensor({-1, -1, -1}, torch::kInt64);
  q.tensors["positions"] = fp.tensors["positions"] = torch::tensor({0, 1, 2}, torch::kInt64);
  eval::ClassificationEvaluator unlabelled(false);
  CHECK(unlabelled.headline() == "agreement");
  const json m = unlabelled.metrics_of(q, fp);
  CHECK_FALSE(m.contains("top1"));  // no labels: no accuracy columns
  CHECK_FALSE(m.contains("fp_top1"));
  CHECK(m["agreement"] == Approx(1.0 / 3));
  CHECK(m["agreement_top5"] == Approx(2.0 / 3));
  // SQNR over all 18 logits, pooled: 10 log10(sum fp^2 / sum (fp - q)^2), float64 sums of
  // small integers (exact), one log10: 1e-12 dB is far above its rounding.
  double signal = 0, noise = 0;
  const auto a = fp.tensors["logits"].flatten(), b = q.tensors["logits"].flatten();
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double z = a[i].item<float>(), d = z - b[i].item<float>();
    signal += z * z;
    noise += d * d;
  }
  CHECK(m["sqnr_db"].get<double>() == Approx(10 * std::log10(signal / noise)).margin(1e-12));
  // Identical outputs have no noise: the cap, not infinity (JSON has no infinity).
  CHECK(unlabelled.metrics_of(fp, fp)["sqnr_db"] == eval::kSqnrCapDb);
  CHECK(eval::sqnr_db(100, 1) == Approx(20.0));
  // The labelled evaluator reports the same fidelity columns next to its accuracies.
  q.tensors["labels"] = fp.tensors["labels"] = torch::tensor({0, 5, 2}, torch::kInt64);
  const json l = eval::ClassificationEvaluator(true).metrics_of(q, fp);
  CHECK(l["top1"] == Approx(1.0 / 3));
  CHECK(l["fp_top1"] == Approx(1.0));
  CHECK(l["agreement_top5"] == m["agreement_top5"]);
  CHECK(l["sqnr_db"] == m["sqnr_db"]);
}

TEST_CASE("the fidelity task leads with agreement and has no FP headline", "[eval]") {
  const auto t = eval::task_metrics(data::Task::kFidelity);
  CHECK(t.headline == "agreement");
  CHECK(t.fp_headline().empty());
  CHECK(t.summary() == std::vector<std::string>{"agreement", "agreement_top5", "kl", "sqnr_db",
                                                "extra_channels_pct", "weight_coverage_pct"});
  CHECK(eval::trial_task_metrics({{"task", "fidelity"}}).task == data::Task::kFidelity);
  CHECK_THROWS_AS(eval::trial_task_metrics({{"task", "segmentation"}}), InputError);
  CHECK(eval::metric_direction("sqnr_db") == +1);
  CHECK(eval::metric_direction("agreement_top5") == +1);
  CHECK(eval::is_percent_metric("agreement_top5"));
  CHECK_FALSE(eval::is_percent_metric("sqnr_db"));
  CHECK_THAT(eval::summarize_metrics(t, {{"agreement", 0.5}, {"sqnr_db", 12.0}}),
             Catch::Contains("agreement 50.00%") && Catch::Contains("SQNR 12.0 dB"));
  CHECK(data::dataset_task("photos") == data::Task::kFidelity);
  CHECK(data::dataset_task("imagenet_samples") == data::Task::kClassification);
}

TEST_CASE("FP check on a labelled sample: the binomial tail decides", "[sweep]") {
  // P(X <= 10) for Binomial(20, 1/2) = 616666 / 2^20 (exact), to float64 rounding of ~20 terms.
  CHECK(sweep::binomial_cdf(10, 20, 0.5) == Approx(616666.0 / 1048576.0).epsilon(1e-12));
  CHECK(sweep::binomial_cdf(-1, 20, 0.5) == 0.0);
  CHECK(sweep::binomial_cdf(20, 20, 0.5) == 1.0);
  // Monotone in k, and the sum of the probabilities is 1.
  double last = 0;
  for (int k = 0; k <= 20; ++k) {
    const double c = sweep::binomial_cdf(k, 20, 0.751);
    CHECK(c >= last);
    last = c;
  }
  CHECK(last == 1.0);
  // EfficientNet-Lite0 (75.1% published) on 20 images: P(X <= 8) = 9.0e-4 < 1e-3 fails,
  // P(X <= 9) = 3.8e-3 passes (values of the binomial; the check counts correct images).
  const sweep::FpReference lite0{"top1", 75.1, "ImageNet-1K acc@1"};
  using Outcome = sweep::FpCheck::Outcome;
  CHECK(sweep::judge_sample(lite0, 45.0, 20).outcome == Outcome::kPass);  // 9 of 20
  CHECK(sweep::judge_sample(lite0, 40.0, 20).outcome == Outcome::kFail);  // 8 of 20
  CHECK(sweep::judge_sample(lite0, 0.0, 20).outcome == Outcome::kFail);
  const auto good = sweep::judge_sample(lite0, 90.0, 20);
  CHECK(good.outcome == Outcome::kPass);
  CHECK_THAT(good.message, Catch::Contains("18 of 20"));
  CHECK(good.to_json()["outcome"] == "pass");
  CHECK(good.to_json()["tolerance"].is_null());
  // The samples carry ImageNet labels: the archive's ImageNet accuracy is their reference.
  const json meta = {{"published", {{"ImageNet-1K", {{"acc@1", 75.1}}}}}};
  auto ref = sweep::published_reference(meta, "imagenet_samples", "", "map_voc07");
  REQUIRE(ref);
  CHECK(ref->value == 75.1);
  CHECK_FALSE(sweep::published_reference(meta, "photos", "", "map_voc07"));
}

TEST_CASE("imagenet_samples and photos read their manifests, bad manifests are one line",
          "[data]") {
  const std::string dir = test::fresh_dir("manifest_data");
  fs::create_directories(dir + "/images/pkg");
  json photos = {{"format", "mpq-photos"}, {"images", json::array()}};
  for (int i = 0; i < 5; ++i) {
    const std::string f = "images/pkg/" + std::to_string(i) + ".ppm";
    write_ppm(dir + "/" + f, static_cast<uint8_t>(10 * i));
    photos["images"].push_back({{"file", f},
                                {"split", i % 4 == 0 ? "calibration" : "eval"},
                                {"package", "pkg"},
                                {"version", "1.0"},
                                {"licence", "MIT"}});
  }
  write_json(dir + "/manifest.json", photos);
  auto eval = data::open_photos(dir, "eval", no_resize());
  auto calib = data::open_photos(dir, "calibration", no_resize());
  CHECK(eval->size() == 3);   // 1, 2, 3
  CHECK(calib->size() == 2);  // 0, 4
  CHECK(data::open_photos(dir, "all", no_resize())->size() == 5);
  CHECK(eval->task() == data::Task::kFidelity);
  CHECK(eval->label(0) == -1);
  CHECK(eval->item_name(0) == "images/pkg/1.ppm");
  CHECK(eval->manifest()["provenance"]["licences"]["MIT"] == 3);
  CHECK(eval->fingerprint() != calib->fingerprint());
  data::ImageData img;
  eval->read_image(0, &img);
  CHECK(img.channels == 3);
  CHECK(img.width == 4);
  CHECK(img.pixels[0] == 10);  // the first byte of image 1
  CHECK_THROWS_AS(data::open_photos(dir, "test", no_resize()), ConfigError);

  // A listed file that is gone: the manifest, the entry and the file are named.
  fs::remove(dir + "/images/pkg/2.ppm");
  CHECK_THROWS_WITH(
      data::open_photos(dir, "eval", no_resize()),
      Catch::Contains("manifest.json: images/2") && Catch::Contains("2.ppm is missing"));
  // Not a manifest of this format, not JSON, no directory.
  write_json(dir + "/manifest.json",
             {{"format", "mpq-imagenet-samples"}, {"images", json::array()}});
  CHECK_THROWS_WITH(data::open_photos(dir, "eval", no_resize()),
                    Catch::Contains("expected a manifest with \"format\": \"mpq-photos\""));
  std::ofstream(dir + "/manifest.json") << "{ not json";
  CHECK_THROWS_WITH(data::open_photos(dir, "eval", no_resize()), Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(data::open_photos(dir + "/nowhere", "eval", no_resize()),
                    Catch::Contains("does not exist"));

  // imagenet_samples: labels from the manifest, 1000 classes, one split.
  json samples = {{"format", "mpq-imagenet-samples"},
                  {"package", "foolbox"},
                  {"package_version", "3.3.4"},
                  {"images",
                   {{{"file", "images/pkg/0.ppm"}, {"label", 243}},
                    {{"file", "images/pkg/1.ppm"}, {"label", 999}}}}};
  write_json(dir + "/manifest.json", samples);
  auto s = data::open_imagenet_samples(dir, "", no_resize());
  CHECK(s->size() == 2);
  CHECK(s->num_classes() == 1000);
  CHECK(s->label(0) == 243);
  CHECK(s->label(1) == 999);
  CHECK(s->task() == data::Task::kClassification);
  samples["images"][1]["label"] = 1000;
  write_json(dir + "/manifest.json", samples);
  CHECK_THROWS_WITH(data::open_imagenet_samples(dir, "", no_resize()),
                    Catch::Contains("images/1: expected an integer \"label\" in [0, 1000)"));
  fs::remove_all(dir);
}

TEST_CASE("the pretrained table: names, presets equal to the exporter's, auto preset", "[train]") {
  const auto& models = train::pretrained_models();
  REQUIRE(models.size() == 3);
  for (const auto& m : models) {
    // The C++ preset and the table's preprocessing (what export_pretrained.py's reference
    // transform uses) must be the same numbers.
    const data::Preprocess p = data::preprocess_preset(m.preset);
    const json& t = m.entry["preprocess"];
    CHECK(p.resize == t["resize"]);
    CHECK(p.crop == t["crop"]);
    CHECK(p.crop == m.resolution);
    CHECK(data::interpolation_name(p.interpolation) == t["interpolation"].get<std::string>());
    CHECK(p.mean == t["mean"].get<std::vector<double>>());
    CHECK(p.std == t["std"].get<std::vector<double>>());
    CHECK(m.weights_sha256.size() == 64);
  }
  CHECK(train::is_pretrained_ref("pretrained:efficientnet_lite0"));
  CHECK_FALSE(train::is_pretrained_ref("default:resnet20"));
  CHECK(train::pretrained_model("pretrained:efficientnet_lite2").resolution == 260);
  CHECK_THROWS_WITH(train::pretrained_model("pretrained:resnet50"),
                    Catch::Contains("unknown pretrained model") &&
                        Catch::Contains("pretrained:efficientnet_lite1"));
  // "auto" resolves to the model's preset on any dataset; an explicit preset is kept.
  const json cfg = sweep::resolve_trial_config(
      {{"model", {{"path", "pretrained:efficientnet_lite1"}}}, {"data", {{"name", "photos"}}}},
      "test");
  CHECK(cfg["data"]["preprocess"]["preset"] == "efficientnet-lite1");
  CHECK(cfg["data"]["preprocess"]["crop"] == 240);
  CHECK(cfg["data"]["eval_split"] == "eval");
  CHECK(cfg["calibration"]["split"] == "calibration");
  const json tv = sweep::resolve_trial_config(
      {{"model", {{"path", "pretrained:efficientnet_lite0"}}},
       {"data", {{"name", "photos"}, {"preprocess", {{"preset", "torchvision-v1"}}}}}},
      "test");
  CHECK(tv["data"]["preprocess"]["preset"] == "torchvision-v1");
  CHECK_THROWS_AS(sweep::resolve_trial_config({{"model", {{"path", "pretrained:nope"}}}}, "test"),
                  ConfigError);
}
