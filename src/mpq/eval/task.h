// Task evaluators: turn a network's outputs on a dataset into a metric map, in a form that
// shards over processes and reduces (docs/architecture.md, "Evaluation").
//
// An evaluation pass runs the network over positions [begin, end) of an evaluation dataset (a
// shard) and keeps the per-example outputs it needs in an EvalShard (classification: logits,
// labels). The metrics of a quantized model are computed against the full-precision model's
// shard of the same positions in two steps:
//   example_stats(q, fp)   additive statistics, one row per example (correct, KL, ...);
//                          processes gather their rows
//   metrics(totals)        the metric map from the column sums (e.g. top1 = correct1 / n)
// The totals are summed over all examples in position order in float64
// (sum_in_position_order), never per shard: a trial's metrics are bit-identical however its
// evaluation was split among processes, provided each example's row is (the network sees the
// same batches: shards are batch-aligned, trial.h eval_shard; and BLAS is single-threaded,
// util/blas.h). Metrics that are not sums over examples (detection AP) instead take every
// example's outputs: such evaluators say needs_gather(), the trial gathers the packed shards of
// all processes and calls gathered_metrics(). FP shards are packed into bytes too, so a
// full-precision reference computed in shards can be gathered and reused by any process.
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
#include "mpq/eval/voc_ap.h"
#include "mpq/model/network.h"
#include "mpq/util/named_array.h"

namespace mpq::eval {

/// Per-example outputs of one pass, rows in position order. Every tensor's first dimension is the
/// number of examples kept (n); "positions" (int64 [n]) holds their positions in the dataset.
struct EvalShard {
  int64_t n = 0;        ///< examples evaluated (bad images skipped are not counted)
  int64_t skipped = 0;  ///< bad images skipped (data.on_bad_image = "skip")
  double seconds = 0;   ///< wall time of the pass, data loading included
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

/// Additive statistics of one evaluation, one row per example: values[i * names.size() + j] is
/// statistic names[j] of the example at positions[i].
struct ExampleStats {
  std::vector<std::string> names;
  std::vector<int64_t> positions;
  std::vector<double> values;  ///< row-major [positions.size(), names.size()]
  int64_t skipped = 0;         ///< bad images skipped by the loader (not examples)
};

/// Serialization for MPI.
std::string pack_example_stats(const ExampleStats& s);
ExampleStats unpack_example_stats(const std::string& bytes);

/// Totals of the rows of all parts taken in ascending position order (parts may come in any
/// order), each column summed in float64 from 0 in that order, plus "n" (rows) and "skipped".
/// Every part must have the same names; positions must be distinct (MPQ_ASSERT otherwise).
std::map<std::string, double> sum_in_position_order(const std::vector<ExampleStats>& parts);

class TaskEvaluator {
 public:
  virtual ~TaskEvaluator() = default;
  /// Runs `net` (whose thread count is already set) over run.begin..run.end of `data`; shows
  /// progress. Throws InputError for a bad image (unless the loader skips them).
  virtual EvalShard evaluate(model::Network& net, const data::Dataset& data,
                             const EvalRun& run) const = 0;
  /// Per-example statistics of `q` against the FP shard `fp` of the same positions. An
  /// example's row depends only on its own outputs.
  virtual ExampleStats example_stats(const EvalShard& q, const EvalShard& fp) const = 0;
  /// The metric map from the totals of sum_in_position_order (keys documented per task).
  virtual nlohmann::json metrics(const std::map<std::string, double>& totals) const = 0;
  /// metrics() of one shard holding every example (a single process).
  nlohmann::json metrics_of(const EvalShard& q, const EvalShard& fp) const {
    return metrics(sum_in_position_order({example_stats(q, fp)}));
  }
  /// The metric trial summaries and `mpq eval` lead with ("top1", "map_voc07").
  virtual std::string headline() const = 0;
  /// The evaluator's options that change what evaluate() keeps (detection: the label offset),
  /// as text for cache keys of FP shards; "" when none do.
  virtual std::string shard_options() const { return ""; }

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

/// The detection headline (eval.voc_metric): mAP with the VOC2007 11-point or the VOC2012
/// all-point interpolation (docs/detection.md).
enum class VocMetric { k07, k12 };
/// The metric it names: "map_voc07" | "map_voc12" (the key in the trial's metrics).
const char* voc_metric_name(VocMetric m);

/// Options of the detection evaluator (eval.* keys of the trial config; docs/detection.md).
struct DetectionOptions {
  int label_offset = 1;        ///< model label of class 0 (torchvision: 0 = background)
  double iou_threshold = 0.5;  ///< the devkit's
  bool strict_iou = false;     ///< IoU > threshold instead of >=
  Voc07Thresholds voc07_thresholds = Voc07Thresholds::kDevkit;  ///< eval.voc07_thresholds
  VocMetric headline = VocMetric::k07;                          ///< eval.voc_metric
  double fidelity_score = 0.5;   ///< FP detections at least this confident are the reference
  bool save_detections = false;  ///< keep every detection as a table
};

/// The evaluator of a task.
std::unique_ptr<TaskEvaluator> make_evaluator(data::Task task, const DetectionOptions& det = {});

}  // namespace mpq::eval
