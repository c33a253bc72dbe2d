#include "mpq/data/preprocess.h"

#include <cstdio>

#include "mpq/util/error.h"

namespace mpq::data {
using nlohmann::json;

namespace {

const std::vector<double> kImagenetMean = {0.485, 0.456, 0.406};
const std::vector<double> kImagenetStd = {0.229, 0.224, 0.225};
// EfficientNet-Lite's (x - 127) / 128 on 8-bit pixels, as x/255 - mean over std (the TensorFlow
// release's MEAN_RGB 127, STDDEV_RGB 128; docs/models.md, "Preprocessing, measured").
const std::vector<double> kLiteMean = {127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0};
const std::vector<double> kLiteStd = {128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0};

struct LitePreset {
  const char* name;
  int resize, crop;
};
// Resolution r trained at, the short side resized to r + 32 and the centre r x r kept: the
// release's crop of r / (r + 32) of the short side.
constexpr LitePreset kLitePresets[] = {{"efficientnet-lite0", 256, 224},
                                       {"efficientnet-lite1", 272, 240},
                                       {"efficientnet-lite2", 292, 260}};

std::string list_text(const std::vector<double>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%g", i ? ", " : "", v[i]);
    s += b;
  }
  return "(" + s + ")";
}

}  // namespace

const std::vector<std::string>& preprocess_presets() {
  static const std::vector<std::string> names = {
      "torchvision-v1",     "torchvision-v2",     "inception",     "efficientnet-lite0",
      "efficientnet-lite1", "efficientnet-lite2", "fashion-mnist", "none"};
  return names;
}

Preprocess preprocess_preset(const std::string& name) {
  Preprocess p;
  p.preset = name;
  if (name == "torchvision-v1" || name == "torchvision-v2" || name == "inception") {
    p.resize = name == "torchvision-v1" ? 256 : name == "torchvision-v2" ? 232 : 342;
    p.crop = name == "inception" ? 299 : 224;
    p.mean = kImagenetMean;
    p.std = kImagenetStd;
    return p;
  }
  for (const LitePreset& lite : kLitePresets)
    if (name == lite.name) {
      p.resize = lite.resize;
      p.crop = lite.crop;
      p.interpolation = Interpolation::kBicubic;
      p.mean = kLiteMean;
      p.std = kLiteStd;
      return p;
    }
  if (name == "fashion-mnist") {
    p.color = ColorMode::kGray;
    p.mean = {0.2860};
    p.std = {0.3530};
  } else if (name == "none") {
    p.mean = {0.0, 0.0, 0.0};
    p.std = {1.0, 1.0, 1.0};
  } else {
    throw ConfigError("/data/preprocess/preset: unknown preset '" + name + "'");
  }
  return p;
}

std::string Preprocess::describe() const {
  std::string s = preset + ": PIL convert(\"" + (color == ColorMode::kRgb ? "RGB" : "L") + "\")";
  if (resize > 0)
    s += " -> resize short side " + std::to_string(resize) + " (" +
         interpolation_name(interpolation) + ", PIL antialiased)";
  if (size_h > 0)
    s += " -> resize to " + std::to_string(size_w) + "x" + std::to_string(size_h) + " (" +
         interpolation_name(interpolation) + ", PIL antialiased, aspect not kept)";
  if (crop > 0) s += " -> center crop " + std::to_string(crop);
  s += " -> x/255 -> normalize mean " + list_text(mean) + " std " + list_text(std);
  return s;
}

json Preprocess::to_json() const {
  return {{"preset", preset},
          {"resize", resize},
          {"crop", crop},
          {"size", size_h > 0 ? nlohmann::json::array({size_h, size_w}) : nlohmann::json::array()},
          {"interpolation", interpolation_name(interpolation)},
          {"color", color_mode_name(color)},
          {"mean", mean},
          {"std", std}};
}

std::vector<std::string> resolve_preprocess(json& p, const std::string& dataset_default) {
  std::vector<std::string> problems;
  std::string name = p.value("preset", "auto");
  if (name == "auto") name = dataset_default;
  Preprocess base = preprocess_preset(name);
  json def = base.to_json();
  bool custom = false;
  auto take = [&](const char* key, bool from_preset) {
    if (from_preset)
      p[key] = def[key];
    else if (p[key] != def[key])
      custom = true;
  };
  take("resize", p.value("resize", -1) == -1);
  if (!p.contains("size")) p["size"] = json::array();
  take("size", p["size"].empty());
  take("crop", p.value("crop", -1) == -1);
  take("interpolation", p.value("interpolation", "preset") == "preset");
  take("color", p.value("color", "preset") == "preset");
  take("mean", p.value("mean", json::array()).empty());
  take("std", p.value("std", json::array()).empty());
  p["preset"] = custom ? "custom" : name;
  const size_t channels = p["color"] == "rgb" ? 3 : 1;
  for (const char* key : {"mean", "std"})
    if (p[key].size() != channels)
      problems.push_back(std::string("/data/preprocess/") + key + ": needs " +
                         std::to_string(channels) + " value(s) for color \"" +
                         p["color"].get<std::string>() + "\", got " +
                         std::to_string(p[key].size()));
  for (const auto& v : p["std"])
    if (v.get<double>() == 0.0) problems.push_back("/data/preprocess/std: must not contain 0");
  if (!p["size"].empty() && (p["size"].size() != 2 || p["size"][0] <= 0 || p["size"][1] <= 0))
    problems.push_back("/data/preprocess/size: must be [] or [height, width] with positive values");
  if (!p["size"].empty() && (p["resize"] != 0 || p["crop"] != 0))
    problems.push_back(
        "/data/preprocess/size: an exact size replaces resize and crop (set both to 0)");
  return problems;
}

Preprocess preprocess_from_json(const json& j) {
  Preprocess p;
  p.preset = j.at("preset").get<std::string>();
  p.resize = j.at("resize").get<int>();
  p.crop = j.at("crop").get<int>();
  if (j.contains("size") && j["size"].size() == 2) {
    p.size_h = j["size"][0].get<int>();
    p.size_w = j["size"][1].get<int>();
  }
  p.interpolation =
      j.at("interpolation") == "bicubic" ? Interpolation::kBicubic : Interpolation::kBilinear;
  p.color = j.at("color") == "gray" ? ColorMode::kGray : ColorMode::kRgb;
  p.mean = j.at("mean").get<std::vector<double>>();
  p.std = j.at("std").get<std::vector<double>>();
  return p;
}

void normalize_image(const uint8_t* chw, int channels, int64_t plane, const Preprocess& p,
                     float* out) {
  for (int c = 0; c < channels; ++c) {
    // Separate float32 operations, as torch's ToTensor (div) and Normalize (sub_, div_) do; this
    // TU is compiled with -ffp-contract=off so no fused multiply-add changes the rounding. An
    // 8-bit input has 256 values: tabulate them once per channel (bit-identical, and two float
    // divisions per pixel cost more than reading the cached image itself).
    const float m = static_cast<float>(p.mean[static_cast<size_t>(c)]);
    const float s = static_cast<float>(p.std[static_cast<size_t>(c)]);
    float table[256];
    for (int x = 0; x < 256; ++x) {
      const float v = static_cast<float>(x) / 255.0f;
      table[x] = (v - m) / s;
    }
    const uint8_t* src = chw + c * plane;
    float* dst = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) dst[i] = table[src[i]];
  }
}

}  // namespace mpq::data
