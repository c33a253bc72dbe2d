// Detection pieces: VOC AP on hand-computed cases (the devkit's rules one by one), and our
// torchvision::nms against torchvision's own results (a hidden case run by
// tests/integration/test_voc.sh with a file of torchvision's outputs).
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mpq/eval/voc_ap.h"
#include "mpq/model/nms.h"
#include "mpq/util/error.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq;

namespace {

constexpr double kApTolerance = 1e-12;

eval::VocDetection det(int64_t image, int label, double score, double x1, double y1, double x2,
                       double y2) {
  eval::VocDetection d;
  d.image = image;
  d.label = label;
  d.score = score;
  d.box[0] = x1;
  d.box[1] = y1;
  d.box[2] = x2;
  d.box[3] = y2;
  return d;
}

eval::VocImageTruth truth(std::vector<std::array<double, 4>> boxes, std::vector<int> labels,
                          std::vector<uint8_t> difficult) {
  eval::VocImageTruth t;
  for (const auto& b : boxes) t.boxes.insert(t.boxes.end(), b.begin(), b.end());
  t.labels = std::move(labels);
  t.difficult = std::move(difficult);
  return t;
}

}  // namespace

TEST_CASE("VOC IoU uses the +1 pixel convention", "[detection]") {
  const double a[4] = {1, 1, 10, 10}, b[4] = {1, 1, 5, 10};  // 100 and 50 pixels
  CHECK(eval::voc_iou(a, b) == Approx(0.5).margin(kApTolerance));
  const double c[4] = {11, 1, 20, 10};  // touching, no shared pixel
  CHECK(eval::voc_iou(a, c) == 0.0);
  const double d[4] = {10, 10, 19, 19};  // one shared pixel: 1 / (100 + 100 - 1)
  CHECK(eval::voc_iou(a, d) == Approx(1.0 / 199.0).margin(kApTolerance));
}

TEST_CASE("VOC AP follows the devkit's matching rules", "[detection]") {
  // One image, class 0: box A (non-difficult) and box B (difficult).
  std::vector<eval::VocImageTruth> gt = {truth({{1, 1, 10, 10}, {30, 30, 40, 40}}, {0, 0}, {0, 1})};
  SECTION("IoU exactly 0.5 is a hit with >=, a miss with >") {
    std::vector<eval::VocDetection> d = {det(0, 0, 0.9, 1, 1, 5, 10)};
    CHECK(eval::voc_ap(d, gt, 1).ap12[0] == Approx(1.0));
    CHECK(eval::voc_ap(d, gt, 1, {0.5, true}).ap12[0] == Approx(0.0));
  }
  SECTION("a duplicate is a false positive; a detection on a difficult box is ignored") {
    std::vector<eval::VocDetection> d = {det(0, 0, 0.9, 1, 1, 10, 10), det(0, 0, 0.8, 1, 1, 10, 10),
                                         det(0, 0, 0.7, 30, 30, 40, 40)};
    auto r = eval::voc_ap(d, gt, 1);
    CHECK(r.positives[0] == 1);
    // TP at rank 1 (recall 1, precision 1), FP at rank 2, the difficult one ignored: AP = 1.
    CHECK(r.ap12[0] == Approx(1.0));
    CHECK(r.ap07[0] == Approx(1.0));
    // The duplicate ranked first (a higher score) leaves the true positive second: precision 1/2.
    d[1].score = 0.95;
    d[1].box[2] = 9;  // still IoU 0.9 with A: the best box, already taken -> FP
    r = eval::voc_ap(d, gt, 1);
    CHECK(r.ap12[0] == Approx(1.0));  // first detection is the TP (0.95), the 0.9 copy is FP
  }
  SECTION("no fall-back to the second-best box") {
    // Two boxes overlapping each other; the detection's best box is already matched, so it is a
    // false positive even though it overlaps the other box by more than 0.5.
    std::vector<eval::VocImageTruth> g2 = {truth({{1, 1, 10, 10}, {1, 1, 9, 10}}, {0, 0}, {0, 0})};
    std::vector<eval::VocDetection> d = {det(0, 0, 0.9, 1, 1, 10, 10),
                                         det(0, 0, 0.8, 1, 1, 10, 10)};
    auto r = eval::voc_ap(d, g2, 1);
    // recall after 2: 1/2, precision 1 then 1/2: area AP = 0.5, 11-point: t<=0.5 -> 1, else 0.
    CHECK(r.ap12[0] == Approx(0.5));
    CHECK(r.ap07[0] == Approx(6.0 / 11.0));
  }
  SECTION("a known PR curve under both AP definitions") {
    // 4 positives in 4 images; detections ranked TP, FP, TP, FP, TP:
    // recall 1/4 1/4 2/4 2/4 3/4, precision 1 1/2 2/3 2/4 3/5.
    std::vector<eval::VocImageTruth> g;
    for (int i = 0; i < 4; ++i) g.push_back(truth({{1, 1, 10, 10}}, {0}, {0}));
    std::vector<eval::VocDetection> d = {
        det(0, 0, 0.9, 1, 1, 10, 10), det(0, 0, 0.8, 50, 50, 60, 60), det(1, 0, 0.7, 1, 1, 10, 10),
        det(1, 0, 0.6, 50, 50, 60, 60), det(2, 0, 0.5, 1, 1, 10, 10)};
    auto r = eval::voc_ap(d, g, 1);
    // Area: envelope 1 on (0, 1/4], 2/3 on (1/4, 1/2], 3/5 on (1/2, 3/4], 0 after.
    CHECK(r.ap12[0] == Approx(0.25 * 1 + 0.25 * 2.0 / 3 + 0.25 * 0.6).epsilon(tol::kFloat64));
    // 11-point: t = 0, .1, .2 -> 1; .3 .. .5 -> 2/3; .6, .7 -> 3/5; .8 .. 1 -> 0.
    CHECK(r.ap07[0] == Approx((3 * 1.0 + 3 * 2.0 / 3 + 2 * 0.6) / 11).epsilon(tol::kFloat64));
  }
  SECTION("a class without detections has AP 0; a class without positives is left out") {
    std::vector<eval::VocImageTruth> g = {truth({{1, 1, 10, 10}, {1, 1, 10, 10}}, {0, 1}, {0, 0})};
    std::vector<eval::VocDetection> d = {det(0, 0, 0.9, 1, 1, 10, 10)};
    auto r = eval::voc_ap(d, g, 3);
    CHECK(r.ap12[1] == 0.0);
    CHECK(std::isnan(r.ap12[2]));
    CHECK(r.map12 == Approx(0.5));  // mean over classes 0 and 1
  }
  SECTION("score ties: earlier image first, then emission order") {
    std::vector<eval::VocImageTruth> g = {truth({{1, 1, 10, 10}}, {0}, {0}),
                                          truth({{1, 1, 10, 10}}, {0}, {0})};
    // Equal scores: image 0's false positive ranks before image 1's true positive.
    std::vector<eval::VocDetection> d = {det(1, 0, 0.5, 1, 1, 10, 10),
                                         det(0, 0, 0.5, 70, 70, 80, 80)};
    auto r = eval::voc_ap(d, g, 1);
    // FP then TP: precision 0, 1/2 at recall 0, 1/2: area AP = 0.5 * 0.5.
    CHECK(r.ap12[0] == Approx(0.25));
  }
}

TEST_CASE("own NMS: greedy, stable order, IoU without +1, suppress above the threshold",
          "[detection]") {
  auto boxes = torch::tensor({{0.f, 0.f, 10.f, 10.f},
                              {0.f, 0.f, 10.f, 5.f},
                              {20.f, 20.f, 30.f, 30.f},
                              {0.f, 0.f, 10.f, 10.f}});
  auto scores = torch::tensor({0.5f, 0.9f, 0.5f, 0.5f});
  // Box 1 first; box 0 has IoU 0.5 with it: kept at threshold 0.5 (not > 0.5), dropped at 0.4.
  // Ties keep index order (stable sort): 0, 2, 3; box 3 equals box 0 and is suppressed by it.
  auto keep = model::nms(boxes, scores, 0.5);
  CHECK(std::vector<int64_t>(keep.data_ptr<int64_t>(), keep.data_ptr<int64_t>() + keep.numel()) ==
        std::vector<int64_t>{1, 0, 2});
  keep = model::nms(boxes, scores, 0.4);
  CHECK(std::vector<int64_t>(keep.data_ptr<int64_t>(), keep.data_ptr<int64_t>() + keep.numel()) ==
        std::vector<int64_t>{1, 2});
  CHECK(model::nms(torch::zeros({0, 4}), torch::zeros({0}), 0.5).numel() == 0);
}

// Hidden: needs the file torchvision wrote (MPQ_NMS_CASES), run by tests/integration/test_voc.sh.
TEST_CASE("own NMS keeps exactly what torchvision.ops.nms keeps", "[.nms-parity]") {
  const char* path = std::getenv("MPQ_NMS_CASES");
  REQUIRE(path != nullptr);
  std::ifstream in(path);
  REQUIRE(in.good());
  auto cases = nlohmann::json::parse(in);
  REQUIRE(cases.size() >= 10);
  int compared = 0;
  for (const auto& c : cases) {
    auto b = c["boxes"].get<std::vector<float>>();
    auto s = c["scores"].get<std::vector<float>>();
    const auto n = static_cast<int64_t>(s.size());
    auto bt = torch::from_blob(b.data(), {n, 4}, torch::kFloat32).clone();
    auto st = torch::from_blob(s.data(), {n}, torch::kFloat32).clone();
    for (const auto& [t, keep] : c["keep"].items()) {
      auto got = model::nms(bt, st, std::stod(t));
      CHECK(std::vector<int64_t>(got.data_ptr<int64_t>(), got.data_ptr<int64_t>() + got.numel()) ==
            keep.get<std::vector<int64_t>>());
      ++compared;
    }
  }
  CHECK(compared == 3 * static_cast<int>(cases.size()));
}

TEST_CASE("VOC2007 thresholds: the devkit's 0:0.1:1, exact k/10, numpy's arange", "[detection]") {
  // The three threshold sets, as doubles: the devkit's (MATLAB's colon from both ends) differs
  // from k/10 only at k = 3; numpy's k * 0.1 also at k = 6 and 7.
  const auto dev = eval::voc07_thresholds(eval::Voc07Thresholds::kDevkit);
  const auto ex = eval::voc07_thresholds(eval::Voc07Thresholds::kExact);
  const auto np = eval::voc07_thresholds(eval::Voc07Thresholds::kNumpy);
  for (int k = 0; k <= 10; ++k) {
    INFO("k = " << k);
    CHECK(ex[k] == k / 10.0);
    CHECK((dev[k] == ex[k]) == (k != 3));
    CHECK((np[k] == ex[k]) == (k != 3 && k != 6 && k != 7));
    CHECK(dev[k] >= ex[k]);  // where they differ, the product is the next double up
  }
  CHECK(dev[3] == 0.1 * 3);
  CHECK(dev[3] > 0.3);
  CHECK(np[6] > 0.6);
  CHECK(np[7] > 0.7);

  // 10 positives (one box per image, class 0) and detections whose recall lands exactly on 0.3,
  // 0.6 and 0.7: T T T, 7 F, T T T, 7 F, T, 9 F, T T T (TP precisions by recall 0.1..1: 1, 1, 1,
  // 4/11, 5/12, 6/13, 7/21, 8/31, 9/32, 10/33). Interpolated precision at recall >= t:
  //   exact  t = 0..0.3: 1; 0.4..0.6: 6/13; 0.7: 1/3; 0.8..1: 10/33
  //   devkit t_3 > 0.3 drops the recall-0.3 point: 6/13 there
  //   numpy  also drops recall 0.6 at t_6 (1/3) and recall 0.7 at t_7 (10/33)
  std::vector<eval::VocImageTruth> gt;
  for (int i = 0; i < 10; ++i) gt.push_back(truth({{1, 1, 10, 10}}, {0}, {0}));
  const std::string seq = "TTTFFFFFFFTTTFFFFFFFTFFFFFFFFFTTT";
  std::vector<eval::VocDetection> d;
  int next_box = 0;
  for (size_t i = 0; i < seq.size(); ++i) {
    const double score = 1.0 - 0.01 * static_cast<double>(i);  // distinct, descending
    if (seq[i] == 'T')
      d.push_back(det(next_box++, 0, score, 1, 1, 10, 10));  // an unmatched box: a TP
    else
      d.push_back(det(0, 0, score, 50, 50, 60, 60));  // overlaps nothing: a FP
  }
  REQUIRE(next_box == 10);
  const double a = 6.0 / 13, b = 1.0 / 3, c = 10.0 / 33;
  const double want_exact = (4 * 1.0 + 3 * a + b + 3 * c) / 11;
  const double want_devkit = (3 * 1.0 + 4 * a + b + 3 * c) / 11;
  const double want_numpy = (3 * 1.0 + 3 * a + b + c + 3 * c) / 11;
  // 1e-12: the same eleven terms summed in another order.
  auto ap = [&](eval::Voc07Thresholds t) {
    return eval::voc_ap(d, gt, 1, {0.5, false, t}).ap07[0];
  };
  CHECK(ap(eval::Voc07Thresholds::kExact) == Approx(want_exact).margin(kApTolerance));
  CHECK(ap(eval::Voc07Thresholds::kDevkit) == Approx(want_devkit).margin(kApTolerance));
  CHECK(ap(eval::Voc07Thresholds::kNumpy) == Approx(want_numpy).margin(kApTolerance));
  CHECK(eval::voc_ap(d, gt, 1).ap07[0] == ap(eval::Voc07Thresholds::kDevkit));  // the default
  CHECK(want_exact - want_devkit > 0.04);  // the cases really differ
  CHECK(want_devkit - want_numpy > 0.01);

  // The VOC2007-test case: pottedplant's 480 positives make recall 144/480 exactly 0.3 too.
  CHECK(144.0 / 480.0 == 0.3);
  CHECK_FALSE(144.0 / 480.0 >= dev[3]);
  CHECK_THROWS_AS(eval::parse_voc07_thresholds("matlab"), ConfigError);
}
