// Object detection metrics on PASCAL VOC (docs/detection.md).
//
// A pass runs the detector on every image and keeps its detections mapped back to the original
// image: a model that saw the image resized to w x h from W x H has its boxes scaled by W / w and
// H / h; boxes are then taken as 0-based pixel coordinates and shifted by +1 into VOC's 1-based
// inclusive convention (as py-faster-rcnn writes VOC results). Model labels are class indices
// shifted by `label_offset` (torchvision: 0 = background, 1..20 = the VOC classes); detections
// of other labels are dropped. Supported outputs (detected from the value returned):
//   (losses: Dict, detections: List[Dict])   torchvision's scripted detectors
//   List[Dict]                               with "boxes" [K, 4], "scores" [K], "labels" [K]
//   (boxes: List[Tensor], scores: List[Tensor], labels: List[Tensor])
// Shards keep "det_image" (position) int64 [M], "det_label" int64 [M], "det_score" float32 [M],
// "det_box" float32 [M, 4] (VOC coordinates) and "positions".
//
// Metrics (gathered over every image, voc_ap.h):
//   map_voc07, map_voc12      mAP@0.5 of the model, VOC2007 11-point and VOC2010+ area AP
//   fp_map_voc07, fp_map_voc12  the FP model's
//   fidelity_map              area mAP of the model scored against the FP model's own detections
//                             with score >= fidelity_score as ground truth (less noisy than mAP:
//                             it measures how far quantization moved the detector)
//   detections, fp_detections, n_eval, skipped_images
// and tables: ap_voc07, ap_voc12, fp_ap_voc07, fp_ap_voc12 (per class), plus `detections`
// [M, 7] (image position, class, score, x1, y1, x2, y2) when save_detections is set.
#pragma once

#include "mpq/eval/task.h"
#include "mpq/eval/voc_ap.h"

namespace mpq::eval {

class DetectionEvaluator final : public TaskEvaluator {
 public:
  explicit DetectionEvaluator(const DetectionOptions& o) : o_(o) {}
  EvalShard evaluate(model::Network& net, const data::Dataset& data,
                     const EvalRun& run) const override;
  /// Columns: detections, fp_detections (of the example's image).
  ExampleStats example_stats(const EvalShard& q, const EvalShard& fp) const override;
  nlohmann::json metrics(const std::map<std::string, double>& sums) const override;
  std::string headline() const override { return voc_metric_name(o_.headline); }
  std::string shard_options() const override {
    return "label_offset=" + std::to_string(o_.label_offset);
  }
  bool needs_gather() const override { return true; }
  Gathered gathered_metrics(const EvalShard& q, const EvalShard& fp,
                            const data::Dataset& data) const override;

 private:
  DetectionOptions o_;
};

/// One image's detections from a detector output value (the forms in the header).
struct ImageDetections {
  torch::Tensor boxes, scores, labels;  // [K, 4], [K], [K]
};
/// Parses a detector's output for a batch of `n` images. InputError if the form is unknown.
std::vector<ImageDetections> parse_detections(const c10::IValue& out, size_t n,
                                              const std::string& model);

/// The VOC ground truth of `data`'s examples at `positions` (one entry each).
std::vector<VocImageTruth> voc_truth(const data::Dataset& data,
                                     const std::vector<int64_t>& positions);

/// Detections of a shard as VocDetection entries, images renumbered to their rank in
/// `positions` (the ground truth's order).
std::vector<VocDetection> shard_detections(const EvalShard& s,
                                           const std::vector<int64_t>& positions,
                                           double min_score = -1e300);

}  // namespace mpq::eval
