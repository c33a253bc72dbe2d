// Datasets as calibration and evaluation see them (docs/datasets.md).
//
// A Dataset is an indexable set of examples, each an image plus a target. Images come out as
// 8-bit CHW arrays after the geometric part of the preprocessing (decode, resize, crop), either
// of one fixed shape image_shape() = {C, H, W}, or of varying sizes (image_shape() = {C, 0, 0};
// detectors that resize internally take original-size images); the loader (loader.h) turns them
// into normalized float32 batches with normalize_image(). Keeping the 8-bit stage separate is what
// lets the preprocessed-image cache (store/image_cache.h) store exactly what the model would get.
//
// Targets depend on the task: a class index in [0, num_classes()) for classification; boxes,
// class indices and difficult flags in the original image's coordinates for detection.
// Implementations: Fashion-MNIST (idx files, in memory), image folders and the three ImageNet
// layouts, PASCAL VOC (files read on demand); data/factory.h builds them from a config.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/data/preprocess.h"

namespace mpq::data {

/// What a dataset's examples are evaluated for: classification (a class label per image),
/// detection (boxes), or fidelity (unlabelled images: the quantized model is measured against
/// the FP model's outputs only, e.g. the `photos` dataset).
enum class Task { kClassification, kDetection, kFidelity };
/// "classification", "detection", "fidelity".
const char* task_name(Task t);

/// An 8-bit image after the geometric preprocessing, CHW.
struct ImageData {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  ///< channels * height * width bytes
};

/// The ground truth of one detection example, in the original image's pixel coordinates as the
/// annotation gives them (VOC: 1-based, inclusive).
struct DetectionTarget {
  int64_t width = 0, height = 0;   ///< original image size
  std::vector<float> boxes;        ///< [n, 4]: x1, y1, x2, y2
  std::vector<int64_t> labels;     ///< [n] class indices
  std::vector<uint8_t> difficult;  ///< [n] 0/1
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual Task task() const { return Task::kClassification; }
  /// Number of examples.
  virtual int64_t size() const = 0;
  /// {C, H, W} of every image after the geometric preprocessing; {C, 0, 0} when sizes vary.
  virtual std::vector<int64_t> image_shape() const = 0;
  /// True if every image has the shape image_shape().
  bool fixed_size() const;
  /// {C, H, W} of example i's image without decoding it (fixed-size data: image_shape(); VOC:
  /// from the annotation's image size).
  virtual std::vector<int64_t> image_shape_of(int64_t i) const;
  virtual int64_t num_classes() const = 0;
  /// Class names in index order (wnids for ImageNet, folder names for image folders).
  virtual std::vector<std::string> class_names() const = 0;

  /// Example i's image (resizing out->pixels as needed). Throws InputError naming the file for
  /// an unreadable, truncated or undecodable image. Safe to call from several threads.
  virtual void read_image(int64_t i, ImageData* out) const = 0;
  /// Example i's class index (classification; -1 for other tasks and unlabelled images).
  virtual int64_t label(int64_t i) const = 0;
  /// Example i's ground truth (detection; InputError for other tasks).
  virtual DetectionTarget detection_target(int64_t i) const;
  /// Example i's name for messages and exports (path relative to the dataset root, or "#i").
  virtual std::string item_name(int64_t i) const { return "#" + std::to_string(i); }

  /// The preprocessing (normalization applied by the loader, geometry already applied).
  virtual const Preprocess& preprocess() const = 0;
  /// SHA-256 identifying the examples, their labels and the preprocessing: equal fingerprints
  /// mean identical tensors out of the loader (docs/datasets.md, "Fingerprints").
  virtual std::string fingerprint() const = 0;
  /// One line for logs and manifests, e.g. "imagenet val (50000 images, folder layout) at /data".
  virtual std::string describe() const = 0;
  /// What a result manifest records about the data: layout, label mapping, counts.
  virtual nlohmann::json manifest() const = 0;

  /// C * H * W of fixed-size images (0 when sizes vary).
  int64_t image_bytes() const;
};

/// A view of `indices` of a base dataset (kept alive by the shared pointer): example i of the
/// view is example indices[i] of the base. Fingerprint = SHA-256(base fingerprint, indices).
std::unique_ptr<Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                                const std::string& what);

/// Which examples of `data` a seeded, class-stratified subset of `count` examples holds (sorted):
/// class c gets floor(count * n_c / n) examples, the remainder goes to the classes with the
/// largest fractional parts (ties: lower class index), and each class draws its examples with
/// calibration_indices(n_c, k_c, seed + c). count >= size() returns every index.
std::vector<int64_t> stratified_subset(const Dataset& data, int64_t count, uint64_t seed);

}  // namespace mpq::data
