// PASCAL VOC average precision exactly as the devkit's VOCevaldet computes it
// (../shared/datasets.md §3; docs/detection.md).
//
// Per class, the detections of every image are sorted by descending score. Each takes the
// ground-truth box of its class in its image with the highest IoU among *all* of them (matched or
// not, difficult or not; the first one on ties). If that IoU >= 0.5 (the devkit; `strict` uses
// > 0.5 as py-faster-rcnn and Detectron do): a difficult box makes the detection neither a true
// nor a false positive; an unmatched box makes it a true positive and marks the box matched; an
// already matched box makes it a false positive (no fall-back to the second-best box). Otherwise
// it is a false positive. IoU uses the +1 pixel convention of 1-based inclusive boxes:
//   iw = min(x2) - max(x1) + 1, ih likewise (clamped at 0), area = (x2 - x1 + 1)(y2 - y1 + 1).
// Positives = non-difficult ground-truth boxes of the class. recall = cumTP / positives,
// precision = cumTP / (cumTP + cumFP).
//   VOC2007 (11-point): AP = mean over the 11 thresholds t of the largest precision at
//     recall >= t (0 if none). The devkit loops `for t=0:0.1:1`, and MATLAB's colon builds
//     a:d:b from both ends (MathWorks' colonop.m, Support solution 1-4FLI96): t_k = k * 0.1 for
//     k <= 5 and 1 - (10 - k) * 0.1 above, in doubles. That is k/10 (the nearest double) for
//     every k but 3, where 3 * 0.1 = 0.30000000000000004: a recall of exactly 0.3 (144 of 480
//     positives) is not counted at t_3. Voc07Thresholds::kDevkit (the default) uses these;
//     kExact uses k / 10.0; kNumpy uses np.arange(0, 1.1, 0.1)'s k * 0.1 (py-faster-rcnn,
//     Detectron2: 0.30000000000000004, 0.6000000000000001, 0.7000000000000001).
//   VOC2010+ (area): precision made monotone from the right, AP = sum over recall changes of
//     (r_{i+1} - r_i) * p_{i+1}, with recall padded by 0 and 1 and precision by 0 and 0.
// mAP = mean of the per-class APs over classes with at least one positive (a class with no
// positive has an undefined AP, reported as NaN and left out).
//
// Tie rule (documented because Python pipelines round scores and sort unstably): equal scores
// keep their input order, i.e. ascending image index, then the order the model emitted them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mpq::eval {

struct VocDetection {
  int64_t image = 0;  ///< index into the ground-truth vector
  int label = 0;      ///< class index
  double score = 0;
  double box[4] = {0, 0, 0, 0};  ///< x1, y1, x2, y2, 1-based inclusive pixel coordinates
};

struct VocImageTruth {
  std::vector<double> boxes;  ///< [n, 4], 1-based inclusive
  std::vector<int> labels;    ///< [n]
  std::vector<uint8_t> difficult;
};

/// The 11 recall thresholds of the VOC2007 AP (see above).
enum class Voc07Thresholds { kDevkit, kExact, kNumpy };

/// Parses "devkit" | "exact" | "numpy" (ConfigError otherwise) and names them back.
Voc07Thresholds parse_voc07_thresholds(const std::string& name);
const char* voc07_thresholds_name(Voc07Thresholds t);

/// The 11 thresholds t_0..t_10 of a variant, as doubles.
std::vector<double> voc07_thresholds(Voc07Thresholds t);

struct VocApOptions {
  double iou_threshold = 0.5;
  bool strict = false;  ///< IoU > threshold instead of >=
  Voc07Thresholds thresholds = Voc07Thresholds::kDevkit;
};

struct VocApResult {
  std::vector<double> ap07, ap12;   ///< per class (NaN: no positive)
  std::vector<int64_t> positives;   ///< non-difficult boxes per class
  std::vector<int64_t> detections;  ///< detections per class
  double map07 = 0, map12 = 0;
};

/// AP of `detections` against `truth` (one entry per image) over `classes` classes.
VocApResult voc_ap(const std::vector<VocDetection>& detections,
                   const std::vector<VocImageTruth>& truth, int classes,
                   const VocApOptions& options = {});

/// Intersection over union of two 1-based inclusive boxes with the +1 convention.
double voc_iou(const double* a, const double* b);

}  // namespace mpq::eval
