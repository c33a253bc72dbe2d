// Task evaluators: turn a network's outputs on a dataset into a metric map, in a form that
// shards over processes and reduces (docs/architecture.md, "Evaluation").
//
// An evaluation pass runs the network over positions [begin, end) of an evaluation dataset (a
// shard) and keeps the per-example outputs it needs in an EvalShard (classification: logits,
// labels). The metrics of a quantized model are computed against the full-precision model's
// shard of the same positions in two steps:
//   sums(q, fp)   additive statistics of the shard (counts, sums of per-example values);
//                 processes add them up (MPI_Allreduce)
//   metrics(sums) the metric map from the totals (e.g. top1 = correct1 / n)
// so the sharded result equals the single-process one. Metrics that are not sums over examples
// (detection AP) instead take every example's outputs: such evaluators say needs_gather(), the
// trial gathers the packed shards of all processes and calls gathered_metrics(). FP shards are
// packed into bytes too, so a full-precision reference computed in shards can be gathered and
// reused by any process.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"
#include "mpq/data/loader.h"
#include "mpq/model/network.h"
#include "mpq/util/named_array.h"

namespace mpq::eval {

/// Per-example outputs of one pass, rows in position order. Every tensor's first dimension is the
/// number of examples kept (n); "positions" (int64 [n]) holds their positions in the dataset.
struct EvalShard {
  int64_t n = 0;           ///< examples evaluated (bad images skipped are not counted)
  int64_t skipped = 0;     ///< bad images skipped (data.on_bad_image = "skip")
  double seconds = 0;      ///< wall time of the pass, data loading included
  std::map<std::string, torch::Tensor> tensors;
};

/// Serialization for MPI (names, dtypes, shapes, raw bytes).
std::string pack_shard(const EvalShard& shard);
EvalShard unpack_shard(const std::string& bytes);
/// Rows of every tensor concatenated in the order given (empty shards skipped); counts and times
/// added.
EvalShard concat_shards(const std::vector<EvalShard>& shards);
/// The rows of `shard` whose position is in [begin, end).
EvalShard slice_shard(const EvalShard& shard, int64_t begin, int64_t end);

struct EvalRun {
  int64_t begin = 0, end = -1;  ///< positions of the dataset to evaluate (end < 0: to the end)
  int64_t batch_size = 256;
  data::LoaderOptions loader;
  std::string label = "eval";  ///< progress bar label
};

class TaskEvaluator {
 public:
  virtual ~TaskEvaluator() = default;
  /// Runs `net` (whose thread count is already set) over run.begin..run.end of `data`; shows
  /// progress. Throws InputError for a bad image (unless the loader skips them).
  virtual EvalShard evaluate(model::Network& net, const data::Dataset& data,
                             const EvalRun& run) const = 0;
  /// Additive statistics of `q` against the FP shard `fp` of the same positions.
  virtual std::map<std::string, double> sums(const EvalShard& q, const EvalShard& fp) const = 0;
  /// The metric map from summed statistics (keys documented per task).
  virtual nlohmann::json metrics(const std::map<std::string, double>& sums) const = 0;
  /// The metric trial summaries and `mpq eval` lead with ("top1", "map_voc07").
  virtual std::string headline() const = 0;

  /// True if metrics() alone cannot give the metrics (detection): use gathered_metrics().
  virtual bool needs_gather() const { return false; }
  struct Gathered {
    nlohmann::json metrics = nlohmann::json::object();
    std::vector<NamedArray> arrays;  ///< tables for the trial file (/results)
  };
  /// Metrics (and tables) from every example's outputs: `q` and `fp` cover the same positions of
  /// `data` (the FP model's outputs may be used as a reference). Only for needs_gather().
  virtual Gathered gathered_metrics(const EvalShard& q, const EvalShard& fp,
                                    const data::Dataset& data) const;
};

/// Runs `net` on a batch, as a tensor or a list of images (whatever the loader produced).
c10::IValue run_batch(model::Network& net, const data::Batch& batch);

/// Options of the detection evaluator (eval.* keys of the trial config; docs/detection.md).
struct DetectionOptions {
  int label_offset = 1;            ///< model label of class 0 (torchvision: 0 = background)
  double iou_threshold = 0.5;      ///< the devkit's
  bool strict_iou = false;         ///< IoU > threshold instead of >=
  std::string headline = "map_voc07";
  double fidelity_score = 0.5;     ///< FP detections at least this confident are the reference
  bool save_detections = false;    ///< keep every detection as a table
};

/// The evaluator of a task.
std::unique_ptr<TaskEvaluator> make_evaluator(data::Task task, const DetectionOptions& det = {});

}  // namespace mpq::eval
