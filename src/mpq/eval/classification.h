// Classification metrics (method.md §7; fidelity metrics as llama.cpp's perplexity tool reports
// them against the full-precision model, because they are far less noisy than accuracy).
//
//   top1 / top5     fraction of examples whose label is the arg-max / among the 5 largest logits
//                   (k is capped at the number of classes)
//   agreement       fraction of examples where the quantized model's top-1 equals the FP model's
//   agreement_top5  fraction of examples where the FP model's top-1 class is among the quantized
//                   model's 5 largest logits (top-5 accuracy with the FP model's answers as labels)
//   kl              mean over examples of KL(p_fp || p_q) = sum_k p_fp,k (log p_fp,k - log p_q,k),
//                   p = softmax(logits), in nats (computed in float64)
//   sqnr_db         output signal-to-quantization-noise ratio over all logits of all examples,
//                   10 log10(sum z_fp^2 / sum (z_fp - z_q)^2) in dB (float64 sums; capped at
//                   kSqnrCapDb when the outputs are identical)
// Ties between logits go to the lower class index, as torch.argmax and numpy.argmax take the
// first maximum: a model whose logits are all equal is right only on class 0. Every example's
// statistics are computed from its own logits by scalar float64 loops in class order, so they do
// not depend on how examples were batched or sharded.
//   fp_top1, fp_top5, n_eval   the FP model's accuracies and the number of examples
//
// Shards keep "logits" (float32 [n, classes]), "labels" (int64 [n]) and "positions".
//
// Unlabelled data (data::Task::kFidelity, e.g. the photos dataset): the same evaluator without
// the label columns; its metrics are agreement, agreement_top5, kl and sqnr_db (headline
// "agreement"), and no top1/top5.
#pragma once

#include "mpq/eval/task.h"

namespace mpq::eval {

/// SQNR reported when the quantized outputs equal the FP outputs (no noise).
inline constexpr double kSqnrCapDb = 200.0;

class ClassificationEvaluator final : public TaskEvaluator {
 public:
  /// `labelled` = false: fidelity only (unlabelled images).
  explicit ClassificationEvaluator(bool labelled = true) : labelled_(labelled) {}
  EvalShard evaluate(model::Network& net, const data::Dataset& data,
                     const EvalRun& run) const override;
  /// Columns: correct1, correct5, fp_correct1, fp_correct5 (labelled only), agree, agree5, kl,
  /// signal (sum of the FP logits squared), noise (sum of the squared differences).
  ExampleStats example_stats(const EvalShard& q, const EvalShard& fp) const override;
  nlohmann::json metrics(const std::map<std::string, double>& totals) const override;
  std::string headline() const override { return labelled_ ? "top1" : "agreement"; }

 private:
  bool labelled_;
};

/// 10 log10(signal / noise), kSqnrCapDb when noise is 0 (or below signal * 1e-20).
double sqnr_db(double signal, double noise);

/// Rank of class `label` in `logits` (n values): the number of classes ahead of it in
/// descending order, ties going to the lower index. `label` is among the top k iff rank < k; a
/// label outside [0, n) gets rank n.
int64_t label_rank(const float* logits, int64_t n, int64_t label);

/// The first index of the largest of n logits (n >= 1).
int64_t first_argmax(const float* logits, int64_t n);

/// KL(softmax(reference) || softmax(candidate)) in nats over n logits, float64, class order.
double kl_divergence(const float* reference, const float* candidate, int64_t n);

/// Number of rows of logits [rows, n] (float32) whose label ranks below k.
int64_t topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

}  // namespace mpq::eval
