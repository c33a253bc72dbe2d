// Shared fixtures for tests that need a small real TorchScript model and data.
#pragma once

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "mpq/data/dataset.h"
#include "mpq/data/loader.h"
#include "mpq/model/zoo.h"

namespace mpq::test {

/// An empty directory path under the system's temp directory, unique to this process and `name`
/// (removed if it exists; created when `create`).
inline std::string fresh_dir(const std::string& name, bool create = true) {
  namespace fs = std::filesystem;
  const std::string d =
      (fs::temp_directory_path() / ("mpq_test_" + name + "_" + std::to_string(::getpid())))
          .string();
  fs::remove_all(d);
  if (create) fs::create_directories(d);
  return d;
}

/// A zoo model (width `width`) with non-trivial BatchNorm statistics, saved to `path`.
inline std::string save_zoo_model(const std::string& arch, const std::string& path,
                                  double width = 0.5, uint64_t seed = 3) {
  torch::manual_seed(seed);
  model::ArchConfig cfg;
  cfg.arch = arch;
  cfg.width = width;
  auto m = model::build_model(cfg);
  m.train(true);
  torch::NoGradGuard ng;
  for (int i = 0; i < 5; ++i) m.forward({torch::randn({16, 1, 28, 28}) * 2 + 0.5});
  m.eval();
  m.save(path);
  return path;
}

/// `n` random 1x28x28 8-bit images with labels 0, normalized with mean 0.5 and std 0.25 (a
/// Dataset for calibration tests).
class RandomImages : public data::Dataset {
 public:
  explicit RandomImages(int64_t n, uint64_t seed = 0) : seed_(seed) {
    torch::manual_seed(seed);
    x_ = torch::randint(0, 256, {n, 1, 28, 28}, torch::kUInt8).contiguous();
    pre_.preset = "test";
    pre_.color = data::ColorMode::kGray;
    pre_.mean = {0.5};
    pre_.std = {0.25};
  }
  int64_t size() const override { return x_.size(0); }
  std::vector<int64_t> image_shape() const override { return {1, 28, 28}; }
  int64_t num_classes() const override { return 10; }
  std::vector<std::string> class_names() const override { return std::vector<std::string>(10); }
  void read_image(int64_t i, data::ImageData* out) const override {
    *out = {1, 28, 28,
            std::vector<uint8_t>(x_.data_ptr<uint8_t>() + i * 784,
                                 x_.data_ptr<uint8_t>() + (i + 1) * 784)};
  }
  int64_t label(int64_t) const override { return 0; }
  const data::Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return "random" + std::to_string(seed_); }
  std::string describe() const override { return "random images"; }
  nlohmann::json manifest() const override { return nlohmann::json::object(); }

 private:
  torch::Tensor x_;
  data::Preprocess pre_;
  uint64_t seed_;
};

/// The images of examples `idx` as the loader gives them.
inline torch::Tensor images_of(const data::Dataset& d, const std::vector<int64_t>& idx) {
  return data::load_batch(d, idx).images;
}

}  // namespace mpq::test
