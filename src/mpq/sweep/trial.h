// Running one trial: resolve the model and the data, quantize the weights with the configured
// method, evaluate against the full-precision model, and produce the record written to HDF5.
//
// run_trial() is a sequence of stages (trial.cpp), each a function named for what it does:
//   prepare     typed config, data (evaluation set, calibration sample), network, trial id,
//               evaluation shard and the FP reference of that shard
//   quantize    weights of every layer (ptq::quantize_network)
//   correct     activation quantizers and bias correction, both calibrated on the calibration set
//   evaluate    the quantized network on the evaluation shard, metrics against the FP reference
//               through the task's evaluator (sums reduced over processes)
//   record      per-layer records, metrics and the manifest (provenance and conventions;
//               trial_record.cpp, on the stage state of trial_stages.h)
//   write       the expanded-model export and the HDF5 file (only on the writing process)
//
// A TrialContext caches what trials share (networks, dataset splits, evaluation sets, image
// caches, FP references), so a sweep worker that runs many trials on the same model and data
// loads and evaluates them once (trial_context.cpp, with the steps every entry point shares).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "mpq/data/dataset.h"
#include "mpq/eval/task.h"
#include "mpq/eval/voc_ap.h"
#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"
#include "mpq/store/trial_file.h"
#include "mpq/sweep/trial_config.h"

namespace mpq::sweep {

/// The examples a trial evaluates on.
struct EvalSet {
  std::shared_ptr<const data::Dataset> data;  ///< position i = the i-th evaluated example
  std::vector<int64_t> indices;  ///< their indices in the split ([] = the whole split, in order)
};

class TrialContext {
 public:
  /// Network for (path, fold_bn, input_shape), loaded on first use; weights restored to FP.
  model::Network& network(const std::string& path, const model::LoadOptions& options);
  /// A dataset split, opened on first use.
  std::shared_ptr<const data::Dataset> split(const data::DataSpec& spec, const std::string& name);
  /// Number of examples of a split (Fashion-MNIST: from the label file's header only).
  int64_t split_size(const data::DataSpec& spec, const std::string& name);
  /// The evaluation examples of a config (subset and limit applied); with `cached` they are read
  /// through the preprocessed-image cache when the config enables it (building it if needed).
  EvalSet eval_set(const DataConfig& data, bool cached, int threads);
  /// The calibration images `indices` of the calibration split, through the image cache when
  /// the config enables it.
  std::shared_ptr<const data::Dataset> calibration_set(const DataConfig& data,
                                                       const std::vector<int64_t>& indices,
                                                       int threads);

  /// FP reference shards, keyed by fp_reference_key(); a stored shard covering positions
  /// [begin, end) serves any request inside that range.
  const eval::EvalShard* fp_reference(const std::string& key, int64_t begin, int64_t end);
  void put_fp_reference(const std::string& key, int64_t begin, int64_t end, eval::EvalShard s);

 private:
  struct FpEntry {
    int64_t begin = 0, end = 0;
    eval::EvalShard shard;
    eval::EvalShard slice;  // the last slice handed out
  };
  std::map<std::string, std::unique_ptr<model::Network>> networks_;
  std::map<std::string, std::shared_ptr<const data::Dataset>> splits_;
  std::map<std::string, EvalSet> eval_sets_;
  std::map<std::string, std::shared_ptr<const data::Dataset>> calibration_sets_;
  std::map<std::string, FpEntry> fp_;
};

/// Layer-parallel execution of one trial over several processes: the layers are split for
/// quantization (ptq::LayerDistribution) and the evaluation set is sharded, with sums reduced.
class TrialDistribution : public ptq::LayerDistribution {
 public:
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Element-wise sum over all processes, in place.
  virtual void allreduce_sum(double* values, int n) = 0;
  /// Every process's bytes, in rank order, on every process.
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
};

/// Positions [begin, end) of `n` examples that process `rank` of `size` evaluates: batch-aligned
/// shards, so every process sees exactly the batches a single-process run would.
std::pair<int64_t, int64_t> eval_shard(int64_t n, int64_t batch_size, int rank, int size);

/// The batch sizes a trial uses on `net`: data.batch_size / calibration.batch_size, made smaller
/// where one batch's largest layer activation would exceed data.max_batch_mb (VGG-16 at 224x224:
/// 12.8 MB per image, so 20 images per batch at the default 256 MiB; the Fashion-MNIST models
/// are far below it).
int64_t eval_batch(const TrialConfig& cfg, const model::Network& net);
int64_t calibration_batch(const TrialConfig& cfg, const model::Network& net);

/// Evaluates `net` with its current weights on `data` (run's shard) on the engine asked for
/// (model/inference.h); `act` (may be null or empty) are the activation quantizers of the
/// quantized network. *engine receives what evaluated ("optimized", or "hooked" and why).
eval::EvalShard evaluate_network(model::Network& net, model::EvalEngine engine,
                                 const std::vector<ptq::ActQuant>* act,
                                 const eval::TaskEvaluator& evaluator, const data::Dataset& data,
                                 const eval::EvalRun& run, std::string* engine_used);

/// The cache key of the FP reference of `net` on `set` with `batch_size`, kept by `evaluator`
/// (its shard_options: a detection sweep over eval.label_offset needs one reference per offset)
/// and evaluated on `engine`.
std::string fp_reference_key(const model::Network& net, const data::Dataset& set,
                             int64_t batch_size, const eval::TaskEvaluator& evaluator,
                             model::EvalEngine engine);

/// The resolved model archive of a config ("default:<arch>" trained and cached if needed).
std::string resolve_model_path(const TrialConfig& cfg);

/// Loads the trial's network through `ctx`, checking that the model runs on the data's images:
/// a model whose input disagrees with the data (channels, size) is a ConfigError naming both.
model::Network& load_trial_network(const TrialConfig& cfg, const data::Dataset& eval_data,
                                   TrialContext& ctx);

/// The data fingerprint that enters a trial's id: the evaluation set's fingerprint, combined
/// with the calibration split's when the trial uses calibration images. Reads no image.
std::string data_identity(const TrialConfig& cfg, TrialContext& ctx);

struct TrialOutcome {
  store::TrialRecord record;
  std::string output_path;  ///< where the record was written ("" if not written)
};

/// Runs the trial described by a resolved config (resolve_trial_config). Writes the HDF5 file
/// if /output is set. Throws ConfigError / InputError like every other entry point.
/// With `dist` every process calls this with the same config; the result (codes, metrics)
/// equals the single-process run, and only rank 0 writes files.
TrialOutcome run_trial(const nlohmann::json& resolved, TrialContext& ctx,
                       TrialDistribution* dist = nullptr);

/// Full-precision evaluation of a config's model on its evaluation set (`mpq eval`): the
/// task's metrics of the FP model ("top1", "top5", ...) plus n_eval, seconds, images_per_second.
/// With `outputs_path` the model outputs are also written there (store::write_eval_outputs).
nlohmann::json evaluate_fp(const nlohmann::json& resolved, TrialContext& ctx,
                           const std::string& outputs_path = "");

/// Scores a detections table against the evaluation set of a (detection) trial config:
/// `table` is [M, 7] rows (image position in the evaluation set, class, score, x1, y1, x2, y2 in
/// VOC 1-based inclusive coordinates), as trial files store it (/results/detections). Used to
/// re-score saved detections at another IoU threshold (`mpq score-detections`).
eval::VocApResult score_detections(const nlohmann::json& resolved, TrialContext& ctx,
                                   const std::vector<double>& table,
                                   const eval::VocApOptions& options);

/// One-line summary of a finished trial for logs: "top-1 88.1% (FP 91.2%) agreement 95.0% ...".
std::string summarize(const store::TrialRecord& r);

}  // namespace mpq::sweep
