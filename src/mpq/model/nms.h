// Non-maximum suppression, and providing torchvision's `torchvision::nms` operator to TorchScript
// archives of torchvision detectors (../shared/datasets.md §4; docs/detection.md).
//
// nms() has the semantics of torchvision 0.14's CPU kernel: boxes (x1, y1, x2, y2) in the score
// dtype, areas (x2 - x1)(y2 - y1) *without* the +1 of VOC's pixel convention, candidates visited
// in a *stable* descending sort of the scores, a box suppressed when its IoU with a kept box is
// > iou_threshold; returns the kept indices (int64) in that order. An unstable sort would change
// which of two equal-score boxes survives, and with it the detections.
#pragma once

#include <torch/script.h>

#include <string>

namespace mpq::model {

/// @param dets    [N, 4] float boxes x1, y1, x2, y2
/// @param scores  [N] scores (same dtype)
/// @return        int64 indices of the kept boxes, by descending score
torch::Tensor nms(const torch::Tensor& dets, const torch::Tensor& scores, double iou_threshold);

/// Which implementation answers `torchvision::nms` in this process:
///   "mpq"          ours (registered on demand, when an archive needs it)
///   "torchvision"  torchvision's own ops library (python3-torchvision's _C*.so), loaded with
///                  dlopen; it also provides roi_align and the other torchvision ops
/// The first archive that needs the operators decides; asking for the other one later is a
/// ConfigError. Returns a description for manifests ("" while no archive needed them).
std::string detection_ops_in_use();

/// Makes sure some torchvision::nms is registered (ours if nothing provides it yet): mpq's own
/// detector calls it from its TorchScript forward.
void ensure_nms_registered();

/// Makes torchvision's operators available according to `choice` ("mpq" or "torchvision");
/// called by load_archive when an archive refers to them. Throws ConfigError (other choice
/// already in use) or InputError (torchvision's library not found or not loadable).
void provide_detection_ops(const std::string& choice);

}  // namespace mpq::model
