#include "mpq/eval/evaluate.h"

#include <chrono>

#include "mpq/util/progress.h"

namespace mpq::eval {

double topk_accuracy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  if (logits.size(0) == 0) return 0.0;
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  auto hit = top.eq(labels.view({-1, 1})).any(1);
  return hit.to(torch::kFloat64).mean().item<double>();
}

Fidelity compare_logits(const torch::Tensor& reference, const torch::Tensor& candidate) {
  Fidelity f;
  if (reference.size(0) == 0) return f;
  auto ref = reference.to(torch::kFloat64), cand = candidate.to(torch::kFloat64);
  f.agreement = ref.argmax(1).eq(cand.argmax(1)).to(torch::kFloat64).mean().item<double>();
  auto lp = torch::log_softmax(ref, 1), lq = torch::log_softmax(cand, 1);
  f.kl = (lp.exp() * (lp - lq)).sum(1).mean().item<double>();
  return f;
}

EvalResult evaluate(model::Network& net, const data::ClassificationDataset& data,
                    const EvalOptions& options) {
  int64_t n = data.size();
  if (options.limit > 0 && options.limit < n) n = options.limit;
  EvalResult r;
  r.n = n;
  std::vector<torch::Tensor> outs;
  std::vector<torch::Tensor> labels;
  Progress bar(options.label, n);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < n; b += options.batch_size) {
    int64_t e = std::min(n, b + options.batch_size);
    torch::Tensor x, y;
    data.load_range(b, e, &x, &y);
    outs.push_back(net.forward(x).to(torch::kFloat32));
    labels.push_back(y);
    bar.advance(e - b);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.logits = outs.empty() ? torch::zeros({0, 0}) : torch::cat(outs, 0);
  auto all_labels = labels.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(labels, 0);
  r.top1 = topk_accuracy(r.logits, all_labels, 1);
  r.top5 = topk_accuracy(r.logits, all_labels, 5);
  r.images_per_second = r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0.0;
  char buf[96];
  std::snprintf(buf, sizeof buf, "top-1 %.2f%% (%.0f img/s)", 100 * r.top1, r.images_per_second);
  bar.finish(buf);
  return r;
}

}  // namespace mpq::eval
