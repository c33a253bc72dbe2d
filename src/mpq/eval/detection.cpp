#include "mpq/eval/detection.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "mpq/eval/classification.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/stopwatch.h"

namespace mpq::eval {
using nlohmann::json;

namespace {

ImageDetections from_dict(const c10::IValue& v, const std::string& model) {
  if (!v.isGenericDict())
    throw InputError(model +
                     ": a detection must be a Dict[str, Tensor] with boxes, scores, labels");
  auto d = v.toGenericDict();
  ImageDetections r;
  for (const char* k : {"boxes", "scores", "labels"}) {
    auto it = d.find(c10::IValue(std::string(k)));
    if (it == d.end() || !it->value().isTensor())
      throw InputError(model + ": a detection dict has no tensor '" + k + "'");
  }
  r.boxes = d.at(c10::IValue(std::string("boxes"))).toTensor();
  r.scores = d.at(c10::IValue(std::string("scores"))).toTensor();
  r.labels = d.at(c10::IValue(std::string("labels"))).toTensor();
  return r;
}

}  // namespace

std::vector<ImageDetections> parse_detections(const c10::IValue& out, size_t n,
                                              const std::string& model) {
  c10::IValue v = out;
  std::vector<ImageDetections> r;
  if (v.isTuple()) {
    const auto& el = v.toTupleRef().elements();
    if (el.size() == 2 && el[1].isList()) {
      v = el[1];  // torchvision: (losses, detections)
    } else if (el.size() == 3 && el[0].isTensorList()) {
      auto b = el[0].toTensorVector(), s = el[1].toTensorVector(), l = el[2].toTensorVector();
      for (size_t i = 0; i < b.size(); ++i) r.push_back({b[i], s[i], l[i]});
    } else {
      throw InputError(model +
                       ": unrecognized detector output (expected (losses, List[Dict]), "
                       "List[Dict] or (List[boxes], List[scores], List[labels]))");
    }
  }
  if (r.empty() && v.isList())
    for (const auto& e : v.toListRef()) r.push_back(from_dict(e, model));
  if (r.size() != n)
    throw InputError(model + ": the detector returned " + std::to_string(r.size()) +
                     " results for " + std::to_string(n) +
                     " images (or an output mpq does not "
                     "recognize: expected (losses, List[Dict]), List[Dict] or three lists)");
  for (auto& d : r) {
    if (d.boxes.dim() != 2 || d.boxes.size(1) != 4 || d.scores.size(0) != d.boxes.size(0) ||
        d.labels.size(0) != d.boxes.size(0))
      throw InputError(model + ": detections must be boxes [K, 4], scores [K], labels [K]");
    d.boxes = d.boxes.to(torch::kFloat32).contiguous();
    d.scores = d.scores.to(torch::kFloat32).contiguous();
    d.labels = d.labels.to(torch::kInt64).contiguous();
  }
  return r;
}

c10::IValue run_batch(model::Network& net, const data::Batch& b) {
  return b.images.defined() ? net.run(b.images) : net.run(b.image_list);
}

TaskEvaluator::Gathered TaskEvaluator::gathered_metrics(const EvalShard&, const EvalShard&,
                                                        const data::Dataset&) const {
  MPQ_ASSERT(false, "gathered_metrics called on an evaluator that does not gather");
  return {};
}

EvalShard DetectionEvaluator::evaluate(model::Network& net, const data::Dataset& data,
                                       const EvalRun& run) const {
  const int64_t total = data.size();
  const int64_t first = std::min(std::max<int64_t>(0, run.begin), total);
  const int64_t last = std::max(first, run.end < 0 ? total : std::min(run.end, total));
  EvalShard s;
  std::vector<int64_t> positions, det_image, det_label;
  std::vector<float> det_score, det_box;
  Progress bar(run.label, last - first);
  auto t0 = std::chrono::steady_clock::now();
  data::BatchStream stream(data, data::index_range(first, last), run.batch_size, run.loader);
  data::Batch b;
  while (stream.next(&b)) {
    const int64_t n = b.size();
    if (n > 0) {
      auto dets = parse_detections(run_batch(net, b), static_cast<size_t>(n), net.path());
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = first + b.positions[static_cast<size_t>(i)];
        positions.push_back(pos);
        // Back to the original image: the model saw it at the loader's size.
        const auto t = data.detection_target(pos);
        const auto& x = b.images.defined() ? b.images[i] : b.image_list[static_cast<size_t>(i)];
        const double sx = static_cast<double>(t.width) / static_cast<double>(x.size(2));
        const double sy = static_cast<double>(t.height) / static_cast<double>(x.size(1));
        const auto& d = dets[static_cast<size_t>(i)];
        const float* bx = d.boxes.data_ptr<float>();
        const float* sc = d.scores.data_ptr<float>();
        const int64_t* lb = d.labels.data_ptr<int64_t>();
        for (int64_t k = 0; k < d.boxes.size(0); ++k) {
          const int64_t cls = lb[k] - o_.label_offset;
          if (cls < 0 || cls >= data.num_classes()) continue;
          det_image.push_back(pos);
          det_label.push_back(cls);
          det_score.push_back(sc[k]);
          det_box.insert(det_box.end(), {static_cast<float>(bx[4 * k] * sx + 1.0),
                                         static_cast<float>(bx[4 * k + 1] * sy + 1.0),
                                         static_cast<float>(bx[4 * k + 2] * sx + 1.0),
                                         static_cast<float>(bx[4 * k + 3] * sy + 1.0)});
        }
      }
    }
    s.skipped += b.skipped;
    s.n += n;
    const double dt = seconds_since(t0);
    char rate[48];
    std::snprintf(rate, sizeof rate, "%.1f img/s", dt > 0 ? static_cast<double>(s.n) / dt : 0.0);
    bar.advance(n + b.skipped, rate);
  }
  s.seconds = seconds_since(t0);
  const auto m = static_cast<int64_t>(det_image.size());
  s.tensors["positions"] = torch::tensor(positions, torch::kInt64);
  s.tensors["det_image"] = torch::tensor(det_image, torch::kInt64);
  s.tensors["det_label"] = torch::tensor(det_label, torch::kInt64);
  s.tensors["det_score"] = torch::tensor(det_score, torch::kFloat32);
  s.tensors["det_box"] = torch::tensor(det_box, torch::kFloat32).view({m, 4});
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld detections (%.1f img/s)", static_cast<long long>(m),
                s.seconds > 0 ? static_cast<double>(s.n) / s.seconds : 0.0);
  bar.finish(buf);
  return s;
}

namespace {
// Detections per example position, in the order of `positions`.
std::vector<double> detections_per_position(const EvalShard& s,
                                            const std::vector<int64_t>& positions) {
  std::unordered_map<int64_t, size_t> row;
  for (size_t i = 0; i < positions.size(); ++i) row[positions[i]] = i;
  std::vector<double> count(positions.size(), 0.0);
  const auto im = s.tensors.at("det_image").contiguous();
  const int64_t* pi = im.data_ptr<int64_t>();
  for (int64_t k = 0; k < im.size(0); ++k) {
    auto it = row.find(pi[k]);
    if (it != row.end()) count[it->second] += 1;
  }
  return count;
}
}  // namespace

ExampleStats DetectionEvaluator::example_stats(const EvalShard& q, const EvalShard& fp) const {
  const auto pos = q.tensors.at("positions").to(torch::kInt64).contiguous();
  ExampleStats s;
  s.names = {"detections", "fp_detections"};
  s.skipped = q.skipped;
  s.positions.assign(pos.data_ptr<int64_t>(), pos.data_ptr<int64_t>() + pos.numel());
  const auto a = detections_per_position(q, s.positions),
             b = detections_per_position(fp, s.positions);
  for (size_t i = 0; i < s.positions.size(); ++i) s.values.insert(s.values.end(), {a[i], b[i]});
  return s;
}

json DetectionEvaluator::metrics(const std::map<std::string, double>& s) const {
  return {{"n_eval", static_cast<int64_t>(s.at("n"))},
          {"skipped_images", static_cast<int64_t>(s.at("skipped"))},
          {"detections", static_cast<int64_t>(s.at("detections"))},
          {"fp_detections", static_cast<int64_t>(s.at("fp_detections"))}};
}

std::vector<VocImageTruth> voc_truth(const data::Dataset& data,
                                     const std::vector<int64_t>& positions) {
  std::vector<VocImageTruth> truth;
  truth.reserve(positions.size());
  for (int64_t p : positions) {
    auto t = data.detection_target(p);
    VocImageTruth g;
    g.boxes.assign(t.boxes.begin(), t.boxes.end());
    for (auto l : t.labels) g.labels.push_back(static_cast<int>(l));
    g.difficult = t.difficult;
    truth.push_back(std::move(g));
  }
  return truth;
}

std::vector<VocDetection> shard_detections(const EvalShard& s,
                                           const std::vector<int64_t>& positions,
                                           double min_score) {
  std::unordered_map<int64_t, int64_t> rank;
  for (size_t i = 0; i < positions.size(); ++i) rank[positions[i]] = static_cast<int64_t>(i);
  const auto& im = s.tensors.at("det_image");
  const auto& lb = s.tensors.at("det_label");
  const auto& sc = s.tensors.at("det_score");
  const auto bx = s.tensors.at("det_box").contiguous();
  std::vector<VocDetection> out;
  const int64_t m = im.size(0);
  const int64_t* pi = im.data_ptr<int64_t>();
  const int64_t* pl = lb.data_ptr<int64_t>();
  const float* ps = sc.data_ptr<float>();
  const float* pb = bx.data_ptr<float>();
  for (int64_t k = 0; k < m; ++k) {
    if (ps[k] < min_score) continue;
    auto it = rank.find(pi[k]);
    if (it == rank.end()) continue;
    VocDetection d;
    d.image = it->second;
    d.label = static_cast<int>(pl[k]);
    d.score = ps[k];
    for (int c = 0; c < 4; ++c) d.box[c] = pb[4 * k + c];
    out.push_back(d);
  }
  return out;
}

TaskEvaluator::Gathered DetectionEvaluator::gathered_metrics(const EvalShard& q,
                                                             const EvalShard& fp,
                                                             const data::Dataset& data) const {
  const auto& pt = q.tensors.at("positions");
  std::vector<int64_t> positions(pt.data_ptr<int64_t>(), pt.data_ptr<int64_t>() + pt.numel());
  const int classes = static_cast<int>(data.num_classes());
  VocApOptions ao{o_.iou_threshold, o_.strict_iou, o_.voc07_thresholds};
  const auto truth = voc_truth(data, positions);
  const auto qd = shard_detections(q, positions), fd = shard_detections(fp, positions);
  const auto rq = voc_ap(qd, truth, classes, ao), rf = voc_ap(fd, truth, classes, ao);
  // Fidelity: the FP model's confident detections are the ground truth.
  std::vector<VocImageTruth> ref(truth.size());
  for (const auto& d : shard_detections(fp, positions, o_.fidelity_score)) {
    auto& g = ref[static_cast<size_t>(d.image)];
    g.boxes.insert(g.boxes.end(), d.box, d.box + 4);
    g.labels.push_back(d.label);
    g.difficult.push_back(0);
  }
  const auto rfid = voc_ap(qd, ref, classes, ao);
  Gathered g;
  g.metrics = {{"map_voc07", rq.map07},
               {"map_voc12", rq.map12},
               {"fp_map_voc07", rf.map07},
               {"fp_map_voc12", rf.map12},
               {"fidelity_map", rfid.map12},
               {"n_eval", static_cast<int64_t>(positions.size())},
               {"detections", static_cast<int64_t>(qd.size())},
               {"fp_detections", static_cast<int64_t>(fd.size())}};
  const std::vector<int64_t> shape = {classes};
  g.arrays.push_back(
      {"ap_voc07", shape, rq.ap07, "per-class AP, VOC2007 11-point (NaN: no positive)"});
  g.arrays.push_back(
      {"ap_voc12", shape, rq.ap12, "per-class AP, VOC2010+ area (NaN: no positive)"});
  g.arrays.push_back({"fp_ap_voc07", shape, rf.ap07, "FP model, per-class AP, VOC2007 11-point"});
  g.arrays.push_back({"fp_ap_voc12", shape, rf.ap12, "FP model, per-class AP, VOC2010+ area"});
  if (o_.save_detections) {
    NamedArray t{"detections", {static_cast<int64_t>(qd.size()), 7}, {}, ""};
    t.description =
        "every detection: image position in the evaluated set, class, score, x1, y1, x2, y2 "
        "(VOC 1-based inclusive coordinates of the original image)";
    for (const auto& d : qd)
      t.values.insert(t.values.end(), {static_cast<double>(positions[static_cast<size_t>(d.image)]),
                                       static_cast<double>(d.label), d.score, d.box[0], d.box[1],
                                       d.box[2], d.box[3]});
    g.arrays.push_back(std::move(t));
  }
  return g;
}

const char* voc_metric_name(VocMetric m) {
  return m == VocMetric::k12 ? "map_voc12" : "map_voc07";
}

std::unique_ptr<TaskEvaluator> make_evaluator(data::Task task, const DetectionOptions& det) {
  if (task == data::Task::kDetection) return std::make_unique<DetectionEvaluator>(det);
  return std::make_unique<ClassificationEvaluator>(task == data::Task::kClassification);
}

}  // namespace mpq::eval
