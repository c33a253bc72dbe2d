// Running one trial: resolve the model, quantize its weights with the configured method,
// evaluate against the full-precision model, and produce the record written to HDF5.
//
// A TrialContext caches what trials share (loaded networks, datasets, full-precision logits),
// so a sweep worker that runs many trials on the same model loads and evaluates it once.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "mpq/data/dataset.h"
#include "mpq/eval/evaluate.h"
#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"
#include "mpq/store/trial_file.h"

namespace mpq::sweep {

/// Full-precision reference of one (network, eval data) pair.
struct FpReference {
  eval::EvalResult result;  ///< logits, top-1/5
};

class TrialContext {
 public:
  /// Network for (path, fold_bn, input_shape), loaded on first use; weights restored to FP.
  model::Network& network(const std::string& path, const model::LoadOptions& options);
  /// Dataset split (name, root, "train"/"test", limit), loaded on first use.
  const data::ClassificationDataset& dataset(const std::string& name, const std::string& root,
                                             const std::string& split, int64_t limit);
  /// Size of a split without loading it (header only).
  int64_t dataset_size(const std::string& name, const std::string& root, const std::string& split);
  /// FP evaluation of `net` on `data` (cached by network sha + options + data fingerprint).
  const FpReference& fp_reference(model::Network& net, const std::string& net_key,
                                  const data::ClassificationDataset& data,
                                  const eval::EvalOptions& options);
  /// Stores an FP reference computed elsewhere (e.g. sharded across ranks) under the key
  /// fp_reference would use.
  void put_fp_reference(const std::string& net_key, const data::ClassificationDataset& data,
                        const eval::EvalOptions& options, FpReference ref);

 private:
  std::map<std::string, std::unique_ptr<model::Network>> networks_;
  std::map<std::string, std::unique_ptr<data::ClassificationDataset>> datasets_;
  std::map<std::string, FpReference> fp_;
};

/// Layer-parallel execution of one trial over several processes: the layers are split for
/// quantization (ptq::LayerDistribution) and the evaluation set is sharded, with counts reduced.
class TrialDistribution : public ptq::LayerDistribution {
 public:
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Element-wise sum over all processes, in place.
  virtual void allreduce_sum(double* values, int n) = 0;
};

/// The cache key of a trial's FP reference network (used by run_trial and by sweeps that
/// precompute references).
std::string fp_network_key(const model::Network& net, const eval::EvalOptions& options);

/// The evaluation options of a resolved trial config (batch size, limit; no sharding).
eval::EvalOptions eval_options(const nlohmann::json& resolved);

/// The data fingerprint that enters a trial's id: the evaluation split's fingerprint, combined
/// with the calibration split's when the trial uses calibration images.
std::string data_identity(const nlohmann::json& resolved, TrialContext& ctx);

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

/// One-line summary of a finished trial for logs: "top-1 88.1% (FP 91.2%) agreement 95.0% ...".
std::string summarize(const store::TrialRecord& r);

}  // namespace mpq::sweep
