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
// so the sharded result equals the single-process one. FP shards are also packed into bytes, so
// a full-precision reference computed in shards can be gathered and reused by any process.
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
  /// The metric trial summaries and `mpq eval` lead with ("top1").
  virtual std::string headline() const = 0;
};

/// The evaluator of a task.
std::unique_ptr<TaskEvaluator> make_evaluator(data::Task task);

}  // namespace mpq::eval
