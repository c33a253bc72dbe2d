// Classification metrics (method.md §7; fidelity metrics as llama.cpp's perplexity tool reports
// them against the full-precision model, because they are far less noisy than accuracy).
//
//   top-1 / top-5   fraction of examples whose label is the arg-max / among the 5 largest logits
//   agreement       fraction of examples where the quantized model's top-1 equals the FP model's
//   KL              mean over examples of KL(p_fp || p_q) = sum_k p_fp,k (log p_fp,k - log p_q,k),
//                   p = softmax(logits), in nats
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>

#include "mpq/data/dataset.h"
#include "mpq/model/network.h"

namespace mpq::eval {

struct EvalOptions {
  int64_t batch_size = 500;
  int64_t limit = 0;  ///< evaluate the first `limit` examples (0 = all)
  /// Evaluate only examples [begin, end) of those (a shard; end < 0 = to the end). Batches start
  /// at `begin`, so shards aligned to batch_size see exactly the batches of a full run.
  int64_t begin = 0, end = -1;
  std::string label = "eval";  ///< progress bar label
};

struct EvalResult {
  double top1 = 0, top5 = 0;
  double correct1 = 0, correct5 = 0;  ///< counts behind top1/top5 (for reductions over shards)
  int64_t n = 0;
  double seconds = 0;  ///< wall time of the forward passes (data loading included)
  double images_per_second = 0;
  torch::Tensor logits;  ///< [n, classes] float32, for fidelity metrics
};

/// Batched evaluation with the thread count already set (at::set_num_threads). Shows progress.
EvalResult evaluate(model::Network& net, const data::ClassificationDataset& data,
                    const EvalOptions& options);

struct Fidelity {
  double agreement = 0;  ///< top-1 agreement with the reference
  double kl = 0;         ///< mean KL(reference || candidate), nats
};

/// Compares two [n, classes] logit tensors row by row.
Fidelity compare_logits(const torch::Tensor& reference, const torch::Tensor& candidate);

/// Sums behind compare_logits: {agreeing rows, sum of per-row KL} (for reductions over shards).
std::pair<double, double> fidelity_sums(const torch::Tensor& reference,
                                        const torch::Tensor& candidate);

/// Number of rows of logits [n, classes] whose label is among the k largest.
double topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

/// top-k accuracy of logits [n, classes] against labels [n].
double topk_accuracy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

}  // namespace mpq::eval
