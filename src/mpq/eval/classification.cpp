#include "mpq/eval/classification.h"

#include <chrono>
#include <cstdio>

#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::eval {
using nlohmann::json;

double topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  if (logits.size(0) == 0) return 0.0;
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  return static_cast<double>(top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>());
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

EvalShard ClassificationEvaluator::evaluate(model::Network& net, const data::Dataset& data,
                                            const EvalRun& run) const {
  const int64_t total = data.size();
  const int64_t first = std::min(std::max<int64_t>(0, run.begin), total);
  const int64_t last = std::max(first, run.end < 0 ? total : std::min(run.end, total));
  EvalShard s;
  std::vector<torch::Tensor> logits, labels, positions;
  Progress bar(run.label, last - first);
  auto t0 = std::chrono::steady_clock::now();
  data::BatchStream stream(data, data::index_range(first, last), run.batch_size, run.loader);
  data::Batch b;
  while (stream.next(&b)) {
    if (b.images.size(0) > 0) {
      torch::Tensor out = net.forward(b.images);
      if (out.dim() != 2 || out.size(0) != b.images.size(0))
        throw InputError(net.path() + ": a classifier must return logits [batch, classes], got " +
                         "a tensor of shape " + c10::str(out.sizes()));
      logits.push_back(out.to(torch::kFloat32));
      labels.push_back(b.labels);
      positions.push_back(torch::tensor(b.positions, torch::kInt64) + first);
    }
    s.skipped += b.skipped;
    const double dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char rate[48];
    std::snprintf(rate, sizeof rate, "%.0f img/s",
                  dt > 0 ? static_cast<double>(s.n + b.images.size(0)) / dt : 0.0);
    s.n += b.images.size(0);
    bar.advance(b.images.size(0) + b.skipped, rate);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t classes = data.num_classes();
  s.tensors["logits"] = logits.empty() ? torch::zeros({0, classes}) : torch::cat(logits, 0);
  s.tensors["labels"] =
      labels.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(labels, 0);
  s.tensors["positions"] =
      positions.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(positions, 0);
  char buf[96];
  std::snprintf(buf, sizeof buf, "top-1 %.2f%% (%.0f img/s)",
                s.n ? 100.0 * topk_count(s.tensors["logits"], s.tensors["labels"], 1) /
                          static_cast<double>(s.n)
                    : 0.0,
                s.seconds > 0 ? static_cast<double>(s.n) / s.seconds : 0.0);
  bar.finish(buf);
  return s;
}

std::map<std::string, double> ClassificationEvaluator::sums(const EvalShard& q,
                                                            const EvalShard& fp) const {
  const auto& ql = q.tensors.at("logits");
  const auto& fl = fp.tensors.at("logits");
  const auto& y = q.tensors.at("labels");
  MPQ_ASSERT(ql.size(0) == fl.size(0), "quantized and FP shards differ in length");
  auto [agree, kl] = fidelity_sums(fl, ql);
  return {{"correct1", topk_count(ql, y, 1)},
          {"correct5", topk_count(ql, y, 5)},
          {"fp_correct1", topk_count(fl, y, 1)},
          {"fp_correct5", topk_count(fl, y, 5)},
          {"agree", agree},
          {"kl_sum", kl},
          {"n", static_cast<double>(q.n)},
          {"skipped", static_cast<double>(q.skipped)}};
}

json ClassificationEvaluator::metrics(const std::map<std::string, double>& s) const {
  const double n = s.at("n");
  auto frac = [&](const char* k) { return n > 0 ? s.at(k) / n : 0.0; };
  return {{"top1", frac("correct1")},
          {"top5", frac("correct5")},
          {"agreement", frac("agree")},
          {"kl", frac("kl_sum")},
          {"fp_top1", frac("fp_correct1")},
          {"fp_top5", frac("fp_correct5")},
          {"n_eval", static_cast<int64_t>(n)},
          {"skipped_images", static_cast<int64_t>(s.at("skipped"))}};
}


}  // namespace mpq::eval
