#include "mpq/eval/evaluate.h"

#include <chrono>

#include "mpq/util/progress.h"

namespace mpq::eval {

double topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  if (logits.size(0) == 0) return 0.0;
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  return static_cast<double>(top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>());
}

double topk_accuracy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  if (logits.size(0) == 0) return 0.0;
  return topk_count(logits, labels, k) / static_cast<double>(logits.size(0));
}

std::pair<double, double> fidelity_sums(const torch::Tensor& reference,
                                        const torch::Tensor& candidate) {
  if (reference.size(0) == 0) return {0.0, 0.0};
  auto ref = reference.to(torch::kFloat64), cand = candidate.to(torch::kFloat64);
  double agree = ref.argmax(1).eq(cand.argmax(1)).to(torch::kFloat64).sum().item<double>();
  auto lp = torch::log_softmax(ref, 1), lq = torch::log_softmax(cand, 1);
  double kl = (lp.exp() * (lp - lq)).sum(1).sum().item<double>();
  return {agree, kl};
}

Fidelity compare_logits(const torch::Tensor& reference, const torch::Tensor& candidate) {
  Fidelity f;
  double n = static_cast<double>(reference.size(0));
  if (n == 0) return f;
  auto [agree, kl] = fidelity_sums(reference, candidate);
  f.agreement = agree / n;
  f.kl = kl / n;
  return f;
}

EvalResult evaluate(model::Network& net, const data::ClassificationDataset& data,
                    const EvalOptions& options) {
  int64_t total = data.size();
  if (options.limit > 0 && options.limit < total) total = options.limit;
  int64_t first = std::min(std::max<int64_t>(0, options.begin), total);
  int64_t last = options.end < 0 ? total : std::min(options.end, total);
  if (last < first) last = first;
  int64_t n = last - first;
  EvalResult r;
  r.n = n;
  std::vector<torch::Tensor> outs;
  std::vector<torch::Tensor> labels;
  Progress bar(options.label, n);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = first; b < last; b += options.batch_size) {
    int64_t e = std::min(last, b + options.batch_size);
    torch::Tensor x, y;
    data.load_range(b, e, &x, &y);
    outs.push_back(net.forward(x).to(torch::kFloat32));
    labels.push_back(y);
    bar.advance(e - b);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.logits = outs.empty() ? torch::zeros({0, 0}) : torch::cat(outs, 0);
  auto all_labels = labels.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(labels, 0);
  r.correct1 = topk_count(r.logits, all_labels, 1);
  r.correct5 = topk_count(r.logits, all_labels, 5);
  r.top1 = n ? r.correct1 / static_cast<double>(n) : 0.0;
  r.top5 = n ? r.correct5 / static_cast<double>(n) : 0.0;
  r.images_per_second = r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0.0;
  char buf[96];
  std::snprintf(buf, sizeof buf, "top-1 %.2f%% (%.0f img/s)", 100 * r.top1, r.images_per_second);
  bar.finish(buf);
  return r;
}

}  // namespace mpq::eval
