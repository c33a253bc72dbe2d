// The default models mpq trains on Fashion-MNIST, built directly as TorchScript modules
// (torch::jit::Module with registered parameters and `define`d forward methods), so the archives
// they save load in Python with torch.jit.load and expose torchvision-like parameter names
// (e.g. "stage2.block0.conv1.weight").
//
// - resnet20: the CIFAR ResNet-20 layout (He et al. 2016, §4.2): a 3x3 stem and three stages of
//   three BasicBlocks with (16, 32, 64) x width channels, 1x1-conv projection shortcuts where the
//   shape changes, global average pooling and a linear classifier. For 28x28 inputs the stem has
//   stride `stem_stride` (default 2: stages run at 14/7/4 pixels, which keeps training within the
//   time budget).
// - mobilenetv2: MobileNetV2-style inverted residuals (Sandler et al. 2018): 1x1 expansion,
//   3x3 depthwise conv, linear 1x1 projection, ReLU6, residual when stride 1 and shapes match.
//
// - ssdlite: a small single-shot detector (Liu et al. 2016, SSD) for S x S inputs (S divisible
//   by 32): eight 3x3 conv+BN+ReLU layers (strides 2,2,1,2,1,2,1,2; (24,48,48,96,96,128,128,160) x
//   width channels), class and box heads (3x3 convs with bias) on the feature maps at strides 8,
//   16 and 32 with 4 anchors per location. Its forward follows torchvision's detectors: a
//   List[Tensor] of RGB images in [0, 1] of any size -> (losses, List[Dict[boxes, scores,
//   labels]]): each image is resized to S x S (bilinear), detections are decoded, thresholded
//   (score > 0.01), reduced by per-class NMS (torchvision::nms, IoU 0.45) to at most 100 and
//   scaled back to the image's 0-based pixel coordinates; labels 1..num_classes-1 (0 =
//   background). `train_forward(x)` takes a resized batch and returns the raw class logits
//   [N, anchors, num_classes] and SSD box offsets [N, anchors, 4] (variances 0.1, 0.2); the
//   anchors (cx, cy, w, h in input pixels) are the buffer `anchors`.
//
// Convolutions of the classifiers and the detector backbone are bias-free and followed by
// BatchNorm (folded away for post-training quantization).
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace mpq::model {

struct ArchConfig {
  std::string arch = "resnet20";  ///< "resnet20" or "mobilenetv2"
  double width = 1.0;             ///< channel multiplier (tiny test models use e.g. 0.25)
  int64_t in_channels = 1;
  int64_t num_classes = 10;
  int64_t stem_stride = 2;
  std::vector<int64_t> input_shape = {1, 28, 28};  ///< C, H, W recorded in the archive
};

/// Names accepted for ArchConfig::arch.
const std::vector<std::string>& known_archs();
/// The zoo's architectures, parsed once from ArchConfig::arch.
enum class Arch { kResnet20, kMobilenetV2, kSsdlite };
/// The Arch of a name in known_archs(); ConfigError naming the known ones otherwise.
Arch parse_arch(const std::string& arch);
/// True for the detector architectures (ssdlite): trained on VOC, evaluated by mAP.
bool is_detector_arch(const std::string& arch);

/// Builds a freshly initialized model in training mode (Kaiming-normal conv weights, BN weight 1
/// and bias 0, default Linear init), drawing from the torch RNG (seed it for determinism). The
/// module carries the attributes `input_shape` (List[int]) and `mpq_meta` (str, JSON text).
/// Throws ConfigError for an unknown arch or a non-positive width.
torch::jit::Module build_model(const ArchConfig& cfg);

}  // namespace mpq::model
