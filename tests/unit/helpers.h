// Shared fixtures for tests that need a small real TorchScript model and data.
#pragma once

#include <string>

#include "mpq/data/dataset.h"
#include "mpq/model/zoo.h"

namespace mpq::test {

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

/// `n` random 1x28x28 images with labels 0 (a ClassificationDataset for calibration tests).
class RandomImages : public data::ClassificationDataset {
 public:
  explicit RandomImages(int64_t n, uint64_t seed = 0) {
    torch::manual_seed(seed);
    x_ = torch::randn({n, 1, 28, 28});
  }
  int64_t size() const override { return x_.size(0); }
  std::vector<int64_t> image_shape() const override { return {1, 28, 28}; }
  int64_t num_classes() const override { return 10; }
  void load(const std::vector<int64_t>& idx, torch::Tensor* images,
            torch::Tensor* labels) const override {
    *images = x_.index_select(0, torch::tensor(idx));
    *labels = torch::zeros({static_cast<int64_t>(idx.size())}, torch::kInt64);
  }
  std::string fingerprint() const override { return "random"; }
  std::string describe() const override { return "random images"; }
  std::string preprocessing() const override { return "none"; }

 private:
  torch::Tensor x_;
};

}  // namespace mpq::test
