// The evaluation preprocessing of image datasets (docs/datasets.md, "Preprocessing"):
//
//   decode (PIL's convert("RGB"|"L"), image.h) -> Resize(resize) -> CenterCrop(crop)
//   -> ToTensor (x / 255.0f, a true float32 division) -> Normalize ((v - mean) / std in float32)
//
// exactly torchvision 0.14's eval transform on PIL images. Named presets match the torchvision
// weights' model cards:
//   torchvision-v1  256 / 224 bilinear, ImageNet mean/std   (IMAGENET1K_V1: ResNets, MobileNetV2,
//   VGG) torchvision-v2  232 / 224 bilinear, ImageNet mean/std   (IMAGENET1K_V2 weights) inception
//   342 / 299 bilinear, ImageNet mean/std   (Inception-v3) efficientnet-lite0/1/2  256/224,
//   272/240, 292/260 bicubic, (x - 127) / 128
//                   (pretrained:efficientnet_lite0/1/2; measured on labelled images,
//                   docs/models.md)
//   fashion-mnist   no resize, no crop, gray, mean 0.2860 std 0.3530 (mpq's default models)
//   none            no resize, no crop, rgb, mean 0 std 1 (pixels / 255)
// A config names a preset ("auto" = the dataset's default) and may override any field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/data/image.h"

namespace mpq::data {

struct Preprocess {
  std::string preset = "none";  ///< the preset the fields came from ("custom" if overridden)
  int resize = 0;               ///< short side after resizing (0 = no resize)
  int crop = 0;                 ///< centre crop size (square; 0 = no crop)
  int size_h = 0, size_w = 0;   ///< resize to exactly size_h x size_w (0 = off; detectors)
  Interpolation interpolation = Interpolation::kBilinear;
  ColorMode color = ColorMode::kRgb;
  /// One per channel, as given (decimal doubles); used as float32, as torchvision's Normalize
  /// converts them (torch.as_tensor(mean, dtype=float32)).
  std::vector<double> mean, std;

  int channels() const { return color == ColorMode::kRgb ? 3 : 1; }
  Geometry geometry() const { return {resize, crop, crop, interpolation, size_h, size_w}; }
  /// One line for manifests: "torchvision-v1: resize 256 (bilinear, PIL) -> center crop 224 ...".
  std::string describe() const;
  /// Every field, for fingerprints and manifests.
  nlohmann::json to_json() const;
};

/// Preset names accepted by /data/preprocess/preset (besides "auto").
const std::vector<std::string>& preprocess_presets();

/// The named preset. Throws ConfigError for an unknown name.
Preprocess preprocess_preset(const std::string& name);

/// Resolves /data/preprocess of a trial config in place: "auto" becomes `dataset_default`, and
/// every field still at its "from the preset" value (-1, "preset", []) takes the preset's value;
/// a field set explicitly is kept and the preset becomes "custom" if it differs. Returns problems
/// as "<pointer>: <message>" (e.g. mean/std of the wrong length).
std::vector<std::string> resolve_preprocess(nlohmann::json& preprocess,
                                            const std::string& dataset_default);

/// Reads a resolved /data/preprocess object.
Preprocess preprocess_from_json(const nlohmann::json& resolved);

/// ToTensor + Normalize of one CHW uint8 image into float32 `out` (channels * plane values):
/// out = (float(x) / 255.0f - mean[c]) / std[c], in float32 without contraction, which is what
/// torchvision computes.
void normalize_image(const uint8_t* chw, int channels, int64_t plane, const Preprocess& p,
                     float* out);

}  // namespace mpq::data
