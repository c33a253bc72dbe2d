// Training mpq's default detector (model/zoo.h "ssdlite") on a VOC-format dataset
// (docs/detection.md, "The default detector").
//
// Recipe (SSD, Liu et al. 2016, §2.2): anchors matched to a ground-truth box when their IoU is
// >= 0.5, and each box's best anchor always; anchors below 0.4 IoU (and not matched) are
// background; the rest, and anchors matched to difficult boxes, are ignored. Loss = softmax
// cross-entropy over the positives and the hardest negatives (3 per positive, at least 8 per
// image) + smooth L1 of the encoded box offsets of the positives, divided by the number of
// positives. AdamW, one-cycle learning rate (15% linear warm-up, cosine decay), horizontal flips.
// Images are resized to S x S with the same bilinear resize the model's forward uses, once, and
// kept in memory. Deterministic for a fixed seed and thread count.
#pragma once

#include <string>

#include "mpq/train/train.h"

namespace mpq::train {

/// Trains the detector of `cfg` (arch "ssdlite") on the VOC trainval split at cfg.data_root,
/// evaluates VOC2007 mAP@0.5 on the test split (cfg.test_limit images, 0 = all), saves the
/// archive to `output` (temporary name, then renamed). TrainResult::test_top1 holds the mAP.
TrainResult train_detector(const TrainConfig& cfg, const std::string& output);

}  // namespace mpq::train
