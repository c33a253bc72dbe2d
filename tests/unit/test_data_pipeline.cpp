// The data pipeline's pieces against hand-computed or obviously-correct references: top-k and
// KL, stratified subsets, preprocessing presets, shard packing, the threaded loader and the
// preprocessed-image cache. (Bit-exactness against torchvision is an integration test, because
// its reference is PIL itself: tests/integration/test_data_parity.sh.)
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <numeric>

#include "helpers.h"
#include "mpq/data/dataset.h"
#include "mpq/data/image.h"
#include "mpq/data/loader.h"
#include "mpq/data/preprocess.h"
#include "mpq/eval/classification.h"
#include "mpq/store/image_cache.h"
#include "mpq/util/error.h"
#include "mpq/util/parallel.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq;
namespace fs = std::filesystem;

namespace {

// A dataset whose image i is filled with the byte i % 251 and whose label is labels[i]; images
// listed in `bad` throw like an undecodable file.
class Counting : public data::Dataset {
 public:
  explicit Counting(std::vector<int64_t> labels, std::vector<int64_t> bad = {})
      : labels_(std::move(labels)), bad_(std::move(bad)) {
    pre_.preset = "test";
    pre_.color = data::ColorMode::kGray;
    pre_.mean = {0.0};
    pre_.std = {1.0};
  }
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  std::vector<int64_t> image_shape() const override { return {1, 3, 2}; }
  int64_t num_classes() const override {
    return *std::max_element(labels_.begin(), labels_.end()) + 1;
  }
  std::vector<std::string> class_names() const override {
    return std::vector<std::string>(static_cast<size_t>(num_classes()));
  }
  void read_image(int64_t i, data::ImageData* out) const override {
    if (std::find(bad_.begin(), bad_.end(), i) != bad_.end())
      throw InputError("img" + std::to_string(i) + ": not an image");
    *out = {1, 3, 2, std::vector<uint8_t>(6, static_cast<uint8_t>(i % 251))};
  }
  int64_t label(int64_t i) const override { return labels_[static_cast<size_t>(i)]; }
  std::string item_name(int64_t i) const override { return "img" + std::to_string(i); }
  const data::Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return "counting" + std::to_string(size()); }
  std::string describe() const override { return "counting"; }
  nlohmann::json manifest() const override { return nlohmann::json::object(); }

 private:
  std::vector<int64_t> labels_, bad_;
  data::Preprocess pre_;
};

}  // namespace

TEST_CASE("top-k ranks, arg-max and KL match hand computations, ties to the lower index",
          "[eval]") {
  auto logits = torch::tensor({{3.f, 1.f, 2.f}, {0.f, 5.f, 1.f}, {1.f, 2.f, 3.f}});
  auto labels = torch::tensor({2, 1, 0}, torch::kInt64);
  CHECK(eval::topk_count(logits, labels, 1) == 1);  // only row 1
  CHECK(eval::topk_count(logits, labels, 2) == 2);  // rows 0 and 1
  CHECK(eval::topk_count(logits, labels, 5) == 3);  // k beyond the 3 classes
  CHECK(eval::topk_count(torch::zeros({0, 3}), torch::zeros({0}, torch::kInt64), 1) == 0);
  // Ties: the lower index ranks first (torch.argmax / numpy.argmax take the first maximum), so
  // a collapsed model with equal logits is right only on class 0.
  const float tied[4] = {1.f, 2.f, 2.f, 2.f};
  CHECK(eval::first_argmax(tied, 4) == 1);
  CHECK(eval::label_rank(tied, 4, 1) == 0);
  CHECK(eval::label_rank(tied, 4, 2) == 1);
  CHECK(eval::label_rank(tied, 4, 3) == 2);
  CHECK(eval::label_rank(tied, 4, 0) == 3);
  CHECK(eval::label_rank(tied, 4, 4) == 4);  // a label the model has no logit for
  CHECK(eval::label_rank(tied, 4, -1) == 4);
  // KL(p || p) = 0 exactly (the same float64 operations on both sides).
  const float p[2] = {0.f, 0.f}, q[2] = {0.f, static_cast<float>(std::log(3.0))};
  CHECK(eval::kl_divergence(p, p, 2) == 0.0);
  // p = softmax(0, 0) = (1/2, 1/2), q = softmax(0, log 3) = (1/4, 3/4):
  // KL = 1/2 log(2) + 1/2 log(2/3). The float32 logit log 3 is off by up to 2^-24 relative,
  // which moves KL by less than 1e-7: the tolerance.
  CHECK(eval::kl_divergence(p, q, 2) ==
        Approx(0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0)).margin(tol::kFloat32Ulp));
}

TEST_CASE("per-example statistics summed in position order give the same metrics for any split",
          "[eval]") {
  eval::ClassificationEvaluator ev;
  eval::EvalShard q, fp;
  q.n = fp.n = 4;
  q.tensors["logits"] = torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {1.f, 0.f}, {1.f, 0.f}});
  fp.tensors["logits"] = torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {0.f, 1.f}, {1.f, 0.f}});
  q.tensors["labels"] = fp.tensors["labels"] = torch::tensor({0, 1, 1, 1}, torch::kInt64);
  q.tensors["positions"] = fp.tensors["positions"] = torch::tensor({0, 1, 2, 3}, torch::kInt64);
  auto m = ev.metrics_of(q, fp);
  CHECK(m["top1"] == Approx(0.5));
  CHECK(m["fp_top1"] == Approx(0.75));
  CHECK(m["agreement"] == Approx(0.75));
  CHECK(m["n_eval"] == 4);
  // Random logits so that the KL sum has rounding to disagree about.
  torch::manual_seed(1);
  const int64_t n = 37;
  eval::EvalShard a, b;
  a.n = b.n = n;
  a.tensors["logits"] = torch::randn({n, 10}) * 3;
  b.tensors["logits"] = torch::randn({n, 10}) * 3;
  a.tensors["labels"] = b.tensors["labels"] = torch::randint(0, 10, {n}, torch::kInt64);
  a.tensors["positions"] = b.tensors["positions"] = torch::arange(n, torch::kInt64);
  const auto whole = ev.metrics_of(a, b);
  // Split 3 ways, parts handed over out of order (as an allgather of other ranks may): the
  // totals are summed in position order, so every metric is bit-identical.
  std::vector<eval::ExampleStats> parts;
  for (auto [s0, s1] : {std::pair<int64_t, int64_t>{20, 37}, {0, 5}, {5, 20}})
    parts.push_back(eval::unpack_example_stats(eval::pack_example_stats(
        ev.example_stats(eval::slice_shard(a, s0, s1), eval::slice_shard(b, s0, s1)))));
  const auto split = ev.metrics(eval::sum_in_position_order(parts));
  for (const char* k : {"top1", "top5", "agreement", "kl", "fp_top1", "fp_top5"})
    CHECK(split[k].get<double>() == whole[k].get<double>());
  CHECK(split["n_eval"] == n);
  CHECK(whole["kl"].get<double>() > 0);
}

TEST_CASE("shards pack, unpack, concatenate and slice by position", "[eval]") {
  eval::EvalShard a, b, empty;
  a.n = 2;
  a.tensors["logits"] = torch::tensor({{1.f, 2.f}, {3.f, 4.f}});
  a.tensors["positions"] = torch::tensor({0, 1}, torch::kInt64);
  b.n = 1;
  b.skipped = 1;
  b.tensors["logits"] = torch::tensor({{5.f, 6.f}});
  b.tensors["positions"] = torch::tensor({3}, torch::kInt64);  // position 2 was a bad image
  empty.tensors["logits"] = torch::zeros({0, 1000});           // placeholder width
  empty.tensors["positions"] = torch::zeros({0}, torch::kInt64);
  auto round = eval::unpack_shard(eval::pack_shard(b));
  CHECK(round.n == 1);
  CHECK(round.skipped == 1);
  CHECK(torch::equal(round.tensors["logits"], b.tensors["logits"]));
  auto all = eval::concat_shards({a, empty, round});
  CHECK(all.n == 3);
  CHECK(all.tensors["logits"].sizes() == torch::IntArrayRef({3, 2}));
  auto mid = eval::slice_shard(all, 1, 4);
  CHECK(mid.n == 2);
  CHECK(torch::equal(mid.tensors["positions"], torch::tensor({1, 3}, torch::kInt64)));
}

TEST_CASE("stratified subsets are proportional, seeded and sorted", "[data]") {
  // 3 classes of 50, 30 and 20 examples.
  std::vector<int64_t> labels;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < (c == 0 ? 50 : c == 1 ? 30 : 20); ++i) labels.push_back(c);
  Counting d(labels);
  auto s = data::stratified_subset(d, 10, 7);
  REQUIRE(s.size() == 10);
  std::map<int64_t, int> per;
  for (auto i : s) per[d.label(i)]++;
  CHECK(per[0] == 5);
  CHECK(per[1] == 3);
  CHECK(per[2] == 2);
  CHECK(std::is_sorted(s.begin(), s.end()));
  CHECK(data::stratified_subset(d, 10, 7) == s);
  CHECK(data::stratified_subset(d, 10, 8) != s);
  // Largest remainder: 7 of 100 -> 3.5, 2.1, 1.4 -> 3 + 2 + 1 = 6, the 7th to class 0.
  std::map<int64_t, int> per7;
  for (auto i : data::stratified_subset(d, 7, 1)) per7[d.label(i)]++;
  CHECK(per7[0] == 4);
  CHECK(per7[1] == 2);
  CHECK(per7[2] == 1);
  CHECK(data::stratified_subset(d, 1000, 1).size() == 100);
}

TEST_CASE("preprocessing presets resolve, overrides become custom, bad lengths are errors",
          "[data]") {
  nlohmann::json p = {{"preset", "auto"},
                      {"resize", -1},
                      {"crop", -1},
                      {"interpolation", "preset"},
                      {"color", "preset"},
                      {"mean", nlohmann::json::array()},
                      {"std", nlohmann::json::array()}};
  auto q = p;
  CHECK(data::resolve_preprocess(q, "torchvision-v1").empty());
  CHECK(q["preset"] == "torchvision-v1");
  CHECK(q["resize"] == 256);
  CHECK(q["crop"] == 224);
  CHECK(q["mean"].size() == 3);
  auto r = p;
  r["crop"] = 200;
  CHECK(data::resolve_preprocess(r, "torchvision-v1").empty());
  CHECK(r["preset"] == "custom");
  CHECK(r["resize"] == 256);
  auto g = p;
  g["color"] = "gray";  // an ImageNet mean of 3 values does not fit one channel
  auto problems = data::resolve_preprocess(g, "torchvision-v1");
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == "/data/preprocess/mean: needs 1 value(s) for color \"gray\", got 3");
  auto fm = data::preprocess_from_json(q);
  CHECK(fm.geometry().crop_width == 224);
  // normalize_image: (x / 255 - mean) / std in float32.
  data::Preprocess n = data::preprocess_preset("fashion-mnist");
  uint8_t px[2] = {0, 255};
  float out[2];
  data::normalize_image(px, 1, 2, n, out);
  CHECK(out[0] == (0.0f - static_cast<float>(0.2860)) / static_cast<float>(0.3530));
  CHECK(out[1] == (1.0f - static_cast<float>(0.2860)) / static_cast<float>(0.3530));
}

TEST_CASE("torchvision's resize sizes and crop offsets, including the rounding cases", "[data]") {
  int w = 0, h = 0;
  data::resized_size(500, 375, 256, &w, &h);  // 256 * 500 / 375 = 341.33
  CHECK((w == 341 && h == 256));
  data::resized_size(60, 1000, 256, &w, &h);
  CHECK((w == 256 && h == 4266));
  data::resized_size(256, 256, 256, &w, &h);
  CHECK((w == 256 && h == 256));
  // Crop offsets use round-half-to-even: a 373-pixel side cropped to 224 starts at 74 (not 75).
  data::Image img{373, 383, 1, std::vector<uint8_t>(373 * 383)};
  for (int y = 0; y < 383; ++y)
    for (int x = 0; x < 373; ++x)
      img.pixels[static_cast<size_t>(y * 373 + x)] = static_cast<uint8_t>((x + 3 * y) % 256);
  data::Geometry g{0, 224, 224, data::Interpolation::kBilinear};
  std::vector<uint8_t> out(224 * 224);
  data::resize_crop(img, g, out.data());
  CHECK(out[0] == img.pixels[static_cast<size_t>(80 * 373 + 74)]);  // (383-224)/2 = 79.5 -> 80
  // A crop larger than the image pads with zeros, torchvision's (crop - size) // 2 before.
  data::Image small{10, 8, 1, std::vector<uint8_t>(80, 9)};
  data::Geometry big{0, 12, 13, data::Interpolation::kBilinear};
  std::vector<uint8_t> padded(12 * 13);
  data::resize_crop(small, big, padded.data());
  CHECK(padded[0] == 0);
  CHECK(padded[static_cast<size_t>(2 * 13 + 1)] == 9);  // pad top 2, left 1
  CHECK(padded[static_cast<size_t>(1 * 13 + 1)] == 0);
}

TEST_CASE("the loader gives the same batches for any worker count, and skips bad images",
          "[data]") {
  std::vector<int64_t> labels(103);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 4);
  Counting d(labels, {5, 50});
  std::vector<int64_t> order(103);
  std::iota(order.rbegin(), order.rend(), 0);  // reversed order: batches follow the list
  auto run = [&](int workers, int prefetch, bool skip) {
    data::LoaderOptions o{workers, prefetch, skip};
    data::BatchStream s(d, order, 10, o);
    std::vector<torch::Tensor> xs, ys;
    int64_t skipped = 0;
    data::Batch b;
    while (s.next(&b)) {
      xs.push_back(b.images);
      ys.push_back(b.labels);
      skipped += b.skipped;
    }
    return std::make_tuple(torch::cat(xs), torch::cat(ys), skipped);
  };
  auto [x1, y1, k1] = run(1, 0, true);
  auto [x3, y3, k3] = run(3, 4, true);
  CHECK(torch::equal(x1, x3));
  CHECK(torch::equal(y1, y3));
  CHECK(k1 == 2);
  CHECK(x1.size(0) == 101);
  // Row 0 is example 102: pixels 102 / 255.
  CHECK(x1[0][0][0][0].item<float>() == 102.0f / 255.0f);
  CHECK(y1[0].item<int64_t>() == 102 % 4);
  // Without skipping, the bad image fails the stream with its name.
  std::string message;
  try {
    run(2, 2, false);
  } catch (const InputError& e) {
    message = e.what();
  }
  CHECK(message == "img50: not an image");
}

TEST_CASE("parallel_for visits every index once and rethrows the first error", "[util]") {
  std::vector<std::atomic<int>> seen(1000);
  parallel_for(1000, 4, [&](int64_t i) { seen[static_cast<size_t>(i)]++; });
  for (auto& s : seen) CHECK(s.load() == 1);
  CHECK_THROWS_WITH(parallel_for(100, 3,
                                 [](int64_t i) {
                                   if (i == 42) throw InputError("boom 42");
                                 }),
                    "boom 42");
}

TEST_CASE("the image cache returns the dataset's exact bytes and is built once", "[store]") {
  const std::string dir = "/tmp/mpq_test_image_cache";
  fs::remove_all(dir);
  std::vector<int64_t> labels(40);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 3);
  auto base = std::make_shared<Counting>(labels, std::vector<int64_t>{7});
  // Two concurrent creators (processes: HDF5 is not thread-safe here, and ranks are processes):
  // one builds, the other waits on the lock and reuses the file.
  bool built[2] = {false, false};
  std::unique_ptr<data::Dataset> c[2];
  pid_t child = fork();
  if (child == 0) {
    bool b = false;
    store::cached_images(base, dir, {2, true}, &b);
    _exit(b ? 1 : 0);
  }
  c[0] = store::cached_images(base, dir, {2, true}, &built[0]);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  built[1] = WEXITSTATUS(status) == 1;
  CHECK(built[0] != built[1]);
  c[1] = store::cached_images(base, dir, {2, true}, &built[1]);
  CHECK_FALSE(built[1]);
  CHECK(c[0]->fingerprint() == base->fingerprint());
  data::ImageData want, got;
  for (int64_t i = 0; i < 40; ++i) {
    if (i == 7) {
      CHECK_THROWS_AS(c[0]->read_image(i, &got), InputError);
      continue;
    }
    base->read_image(i, &want);
    c[1]->read_image(i, &got);
    CHECK(want.pixels == got.pixels);
    CHECK((got.channels == 1 && got.height == 3 && got.width == 2));
    CHECK(c[0]->label(i) == base->label(i));
  }
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().extension() == ".h5";
  CHECK(files == 1);
  // Without skip_bad, building stops at the bad image and leaves no file.
  auto other = std::make_shared<Counting>(std::vector<int64_t>(9, 0), std::vector<int64_t>{3});
  CHECK_THROWS_WITH(store::cached_images(other, dir, {1, false}), "img3: not an image");
  files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().extension() == ".h5";
  CHECK(files == 1);
}
