// Training the default models on Fashion-MNIST in C++ (LibTorch), saved as TorchScript archives
// that Python's torch.jit.load reads.
//
// Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4 (all parameters), batch 128, a
// one-cycle schedule (linear warm-up over the first 15% of steps to `lr`, cosine decay to 0),
// 5 epochs for resnet20 and 4 for mobilenetv2. Optional augmentation (off by default: in these
// short schedules it cost accuracy: ResNet-20 reached 91.25% in 5 epochs with it and 91.93% in 4
// without; MobileNetV2 90.25% vs 91.91% in 4 epochs) by
// random 28x28 crops of the image zero-padded (in pixel space) by 2, and horizontal flips.
// Deterministic for a fixed seed and thread count: the data order and the augmentation come from
// std::mt19937_64(seed), the initialization from torch::manual_seed(seed).
//
// Default models are cached under <cache_dir>/<arch>-<key>.pt, where key is the first 16 hex
// digits of the SHA-256 of the canonical training config (everything but threads and paths),
// with a <arch>-<key>.json sidecar holding the config, the measured test accuracy and the
// training time.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mpq/model/zoo.h"
#include "mpq/util/schema.h"

namespace mpq::train {

struct TrainConfig {
  model::ArchConfig arch;
  int epochs = 5;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  uint64_t seed = 0;
  int64_t train_limit = 0;  ///< use the first N training images (0 = all 60000)
  int64_t test_limit = 0;   ///< evaluate on the first N test images (0 = all 10000)
  bool augment = false;
  std::string data_root;  ///< Fashion-MNIST directory (ssdlite: a VOCdevkit directory)
  int threads = 0;        ///< 0 = all cores of this process's share
  /// ssdlite: what identifies its training data in the cache key (the generator's options for
  /// the synthetic default, else the data directory).
  nlohmann::json voc_identity;

  /// The identity of the training run (no paths, no threads): used for the cache key.
  nlohmann::json identity() const;
};

struct TrainResult {
  std::string path;      ///< the saved archive
  double test_top1 = 0;  ///< on the (limited) test split after the last epoch
  double seconds = 0;    ///< training wall time (without the final evaluation)
  int64_t train_images = 0;
  bool from_cache = false;
  nlohmann::json sidecar;  ///< what the .json sidecar holds
};

/// Schema of `mpq train --config` files (docs/configs.md lists it).
const Schema& train_schema();

/// Builds a TrainConfig from a document resolved by train_schema(); `output` receives /output.
TrainConfig train_config_from_json(const nlohmann::json& resolved, std::string* output);

/// Trains and saves to `output` (written to a temporary name, renamed when complete).
TrainResult train_model(const TrainConfig& cfg, const std::string& output);

/// Learning rate at `step` of `total` for a peak rate: linear warm-up over the first 15% of the
/// steps, then cosine decay to 0 (the classifier and detector trainers).
double warmup_cosine_lr(int64_t step, int64_t total, double peak);

/// Default epochs of an arch (resnet20: 5, mobilenetv2: 4, ssdlite: kSsdliteEpochs).
constexpr int kSsdliteEpochs = 12;
int default_epochs(const std::string& arch);

/// The default training config of a named default model ("resnet20" or "mobilenetv2").
TrainConfig default_train_config(const std::string& arch, const std::string& data_root);

/// Returns the cached archive for `cfg` in `cache_dir`, training it first if absent.
TrainResult ensure_cached(const TrainConfig& cfg, const std::string& cache_dir);

/// Resolves a model reference: "default:<arch>" trains/caches the default model of that arch;
/// "pretrained:<name>" exports/caches a pretrained network (pretrained.h); anything else is a
/// path returned unchanged.
std::string resolve_model_ref(const std::string& ref, const std::string& cache_dir,
                              const std::string& data_root);

}  // namespace mpq::train
