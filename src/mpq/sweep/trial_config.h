// The trial config: everything that defines one quantization trial (docs/configs.md has the
// full table, generated from trial_schema()).
//
// Identity (method.md §7 and DEVELOPERS.md): a trial's id is the SHA-256 of
//   canonical(identity part of the resolved config) + "\n" + model SHA-256 + "\n" + data
//   fingerprint
// where canonical() is nlohmann::json::dump() (object keys sorted) and the identity part drops
// what cannot change the result: paths (/model/path, /data/root, /data/imagenet, /output,
// /export, /save_logits, cache directories), /threads, loader settings (/data/batch_size, workers,
// prefetch, cache, layout), the evaluation engine (/eval/engine), /label, the option groups of
// methods (and multipoint policies) the trial does not use, and the calibration block when no
// calibration data is used. The model and the data enter through their content fingerprints instead
// of their paths (the data fingerprint covers the layout's label mapping), so the id is stable
// across runs, ranks and machines.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mpq/data/factory.h"
#include "mpq/eval/task.h"
#include "mpq/model/inference.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/quantize.h"
#include "mpq/util/schema.h"

namespace mpq::sweep {

/// Schema of a trial config (`mpq quantize --config`, and every trial a sweep expands to).
const Schema& trial_schema();

// --- the typed form, parsed once per trial from a resolved config ------------------------------

struct ModelConfig {
  std::string path, cache_dir;
  bool fold_bn = true;
  std::vector<int64_t> input_shape;   ///< empty: the dataset's image shape
  std::string detection_ops = "mpq";  ///< who provides torchvision::nms (model/nms.h)
  model::EqualizeOptions equalize;    ///< cross-layer equalization at load (model/equalize.h)
};

struct DataConfig {
  data::DataSpec spec;
  std::string eval_split, calibration_split;  ///< resolved (dataset defaults applied)
  int64_t eval_limit = 0;                     ///< first N of the evaluation examples (0 = all)
  int64_t eval_subset = 0;  ///< seeded class-stratified subset of N examples (0 = all)
  uint64_t eval_subset_seed = 0;
  int64_t batch_size = 0;  ///< evaluation batch size (as configured; sweep/trial.h eval_batch())
  int64_t max_batch_mb = 256;  ///< bound on a batch's largest layer activation (0 = none)
  int workers = 0;             ///< decoding threads (0 = the trial's thread count)
  int prefetch = 2;
  bool cache = true;  ///< preprocessed-image cache for file datasets
  std::string cache_dir;
  bool skip_bad_images = false;
  /// Loader options for `threads` compute threads.
  data::LoaderOptions loader(int threads) const;
};

struct CalibrationConfig {
  int64_t size = 256;
  uint64_t seed = 0;
  int64_t batch_size = 64;
  int64_t max_stats_mb = 256;
  std::string cache_dir;
};

struct TrialConfig {
  nlohmann::json resolved;  ///< the resolved config it was parsed from (identity, records)
  ModelConfig model;
  DataConfig data;
  CalibrationConfig calibration;
  ptq::WeightConfig weights;
  ptq::ActivationConfig activations;
  eval::DetectionOptions detection;                          ///< /eval (detection tasks)
  model::EvalEngine eval_engine = model::EvalEngine::kAuto;  ///< /eval/engine (not identity)
  bool bias_correction = false;
  uint64_t seed = 0;
  std::string label;
  int threads = 0;
  std::string output, export_path, export_int8_path;
  std::string save_logits_path;  ///< /save_logits: per-image outputs of the quantized model

  /// True if the trial's methods use calibration images (multipoint allocation, output-error bit
  /// allocation, activation quantization, bias correction).
  bool uses_calibration_data() const;
  /// The task of the trial's dataset (detection for VOC).
  data::Task task() const;
};

/// Parses a resolved (and completed) trial config.
TrialConfig parse_trial_config(const nlohmann::json& resolved);

/// Fills in what depends on other fields (dataset defaults: splits, preprocessing preset and its
/// fields, batch size), in place. Returns problems as "<pointer>: <message>".
std::vector<std::string> complete_trial_config(nlohmann::json& resolved);

/// The identity part of a parsed config (see header): its resolved JSON minus what does not
/// change the result, decided on the typed fields.
nlohmann::json trial_identity(const TrialConfig& config);

/// Hex SHA-256 trial id.
std::string trial_id(const TrialConfig& config, const std::string& model_sha256,
                     const std::string& data_fingerprint);

/// Cross-field checks the schema cannot express (e.g. quantized-prefix statistics need a
/// per-layer allocation), on the typed config. Returns problems as "<pointer>: <message>".
std::vector<std::string> check_trial_semantics(const TrialConfig& config);

/// Resolves and validates a user trial config; throws ConfigError listing every problem.
nlohmann::json resolve_trial_config(const nlohmann::json& user, const std::string& source);

}  // namespace mpq::sweep
