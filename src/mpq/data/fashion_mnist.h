// Fashion-MNIST (Xiao et al. 2017) read directly from the gzip'd idx files that Debian's
// dataset-fashion-mnist package installs in /usr/share/datasets/fashion-mnist:
//   {train,t10k}-images-idx3-ubyte.gz  (magic 2051, n x 28 x 28 uint8)
//   {train,t10k}-labels-idx1-ubyte.gz  (magic 2049, n uint8 in [0, 9])
//
// Default preprocessing (preset "fashion-mnist"): x = (pixel / 255 - kMean) / kStd with
// kMean = 0.2860, kStd = 0.3530, the mean and standard deviation of the 60k training pixels
// (tests/unit/test_data.cpp recomputes them); images are 1x28x28. Any other preprocessing (e.g.
// "rgb" with a resize for a 3-channel model) applies to the 28x28 gray images as to files.
#pragma once

#include <string>

#include "mpq/data/dataset.h"

namespace mpq::data {

constexpr double kFashionMnistMean = 0.2860;
constexpr double kFashionMnistStd = 0.3530;
constexpr const char* kFashionMnistDefaultRoot = "/usr/share/datasets/fashion-mnist";

enum class Split { kTrain, kTest };

/// Human name of a split: "train" or "test".
const char* split_name(Split s);

/// Number of examples of a split from the label file's header alone (cheap: no image decoding).
/// Throws InputError like load_fashion_mnist for a missing or malformed file.
int64_t fashion_mnist_size(const std::string& root, Split split);

/// Loads one split into memory, keeping the first `limit` examples (0 = all). Validates magic
/// numbers, dimensions, label range and that each file holds exactly the bytes its header
/// announces; a missing, unreadable, truncated or malformed file raises InputError naming it.
std::unique_ptr<Dataset> load_fashion_mnist(const std::string& root, Split split,
                                            int64_t limit = 0,
                                            const Preprocess& preprocess =
                                                preprocess_preset("fashion-mnist"));

}  // namespace mpq::data
