// The state one trial carries through its stages (trial.cpp) and the record stage
// (trial_record.cpp): internal to sweep/, nothing outside it includes this header.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/eval/task.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/quantize.h"
#include "mpq/store/trial_file.h"
#include "mpq/sweep/trial.h"
#include "mpq/util/error.h"

namespace mpq::sweep::stages {

using nlohmann::json;

// With several processes, a failure on one must become a failure on all before the next
// collective step, or the others would wait forever: run() executes local work and then agrees.
class Collective {
 public:
  explicit Collective(TrialDistribution* dist) : dist_(dist) {}
  template <typename F>
  auto run(const F& f) -> decltype(f()) {
    if (!dist_) return f();
    std::string error;
    bool config_error = false;
    try {
      auto r = f();
      dist_->agree("");
      return r;
    } catch (const ConfigError& e) {
      error = e.what();
      config_error = true;
    } catch (const std::exception& e) {
      error = e.what();
    }
    dist_->agree(error.empty() ? "unknown error" : error, config_error);
    MPQ_ASSERT(false, "agree() returned after a local error");
    return f();
  }
  TrialDistribution* dist() const { return dist_; }
  bool writer() const { return !dist_ || dist_->rank() == 0; }

 private:
  TrialDistribution* dist_;
};

// Everything the later stages need.
struct Prepared {
  TrialConfig cfg;
  int threads = 1;
  std::string model_path;
  model::Network* net = nullptr;
  EvalSet eval;
  std::shared_ptr<const data::Dataset> calibration;  // null without calibration data
  std::vector<int64_t> calibration_indices;          // indices in the calibration split
  std::string id;
  eval::EvalRun run;  // this process's shard
  std::unique_ptr<eval::TaskEvaluator> evaluator;
  const eval::EvalShard* fp = nullptr;
  std::string start_time;
  std::chrono::steady_clock::time_point t0;
  std::vector<NamedArray> arrays;  // result tables of the evaluation (per-class AP, ...)
  double data_seconds = 0;         // opening the data (listing, image cache build or open)
  double fp_eval_seconds = 0;      // the FP reference pass (0 when it came from the context)
  std::string eval_engine;         // what evaluated the quantized network (InferenceScope)
};

struct Corrections {
  std::vector<ptq::ActQuant> act;
  std::vector<json> bias;              // per layer
  double act_calibration_seconds = 0;  ///< calibrating the activation quantizers
  double correction_seconds = 0;       ///< bias correction's passes
};

/// Per-layer records and the network-wide cost and error metrics (into rec.layers, rec.metrics).
void record_layers(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
                   store::TrialRecord& rec);

/// The trial's manifest: provenance, run, model, data, quantization (docs/trial-file-format.md).
json manifest(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
              const json& metrics, Collective& col);

}  // namespace mpq::sweep::stages
