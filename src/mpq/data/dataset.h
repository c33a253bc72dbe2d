// Image classification datasets as seen by calibration, evaluation and training.
//
// A dataset is an indexable set of (image, label) pairs with a fixed preprocessing. Images come
// out as float32 tensors [n, C, H, W], already normalized; labels as int64 [n] in
// [0, num_classes). Implementations may hold everything in memory (Fashion-MNIST) or read files
// on demand (ImageNet folders); callers only use load().
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mpq::data {

class ClassificationDataset {
 public:
  virtual ~ClassificationDataset() = default;

  /// Number of examples.
  virtual int64_t size() const = 0;
  /// {C, H, W} of every image after preprocessing.
  virtual std::vector<int64_t> image_shape() const = 0;
  virtual int64_t num_classes() const = 0;
  /// Fills images [indices.size(), C, H, W] (float32, normalized) and labels [indices.size()]
  /// (int64) for the given example indices, in that order. Indices must be in [0, size()).
  virtual void load(const std::vector<int64_t>& indices, torch::Tensor* images,
                    torch::Tensor* labels) const = 0;
  /// Loads the contiguous range [begin, end).
  void load_range(int64_t begin, int64_t end, torch::Tensor* images, torch::Tensor* labels) const;
  /// SHA-256 identifying the data and its preprocessing (files' contents, split, normalization,
  /// subset). Equal fingerprints mean identical tensors out of load().
  virtual std::string fingerprint() const = 0;
  /// One line for logs and manifests, e.g. "fashion-mnist test (10000 images) at /usr/share/...".
  virtual std::string describe() const = 0;
  /// The preprocessing, written into result manifests (method.md §7).
  virtual std::string preprocessing() const = 0;
};

}  // namespace mpq::data
