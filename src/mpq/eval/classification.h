// Classification metrics (method.md §7; fidelity metrics as llama.cpp's perplexity tool reports
// them against the full-precision model, because they are far less noisy than accuracy).
//
//   top1 / top5     fraction of examples whose label is the arg-max / among the 5 largest logits
//                   (k is capped at the number of classes)
//   agreement       fraction of examples where the quantized model's top-1 equals the FP model's
//   kl              mean over examples of KL(p_fp || p_q) = sum_k p_fp,k (log p_fp,k - log p_q,k),
//                   p = softmax(logits), in nats (computed in float64)
//   fp_top1, fp_top5, n_eval   the FP model's accuracies and the number of examples
//
// Shards keep "logits" (float32 [n, classes]), "labels" (int64 [n]) and "positions".
#pragma once

#include "mpq/eval/task.h"

namespace mpq::eval {

class ClassificationEvaluator final : public TaskEvaluator {
 public:
  EvalShard evaluate(model::Network& net, const data::Dataset& data,
                     const EvalRun& run) const override;
  std::map<std::string, double> sums(const EvalShard& q, const EvalShard& fp) const override;
  nlohmann::json metrics(const std::map<std::string, double>& sums) const override;
  std::string headline() const override { return "top1"; }
};

/// Number of rows of logits [n, classes] whose label is among the k largest.
double topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

/// Sums behind agreement and KL: {rows whose arg-max agree, sum over rows of KL(ref || cand)}.
std::pair<double, double> fidelity_sums(const torch::Tensor& reference,
                                        const torch::Tensor& candidate);

}  // namespace mpq::eval
