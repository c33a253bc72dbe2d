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
// Every conv is bias-free and followed by BatchNorm (folded away for post-training quantization).
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

/// Builds a freshly initialized model in training mode (Kaiming-normal conv weights, BN weight 1
/// and bias 0, default Linear init), drawing from the torch RNG (seed it for determinism). The
/// module carries the attributes `input_shape` (List[int]) and `mpq_meta` (str, JSON text).
/// Throws ConfigError for an unknown arch or a non-positive width.
torch::jit::Module build_model(const ArchConfig& cfg);

}  // namespace mpq::model
