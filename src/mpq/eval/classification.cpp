#include "mpq/eval/classification.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/stopwatch.h"

namespace mpq::eval {
using nlohmann::json;

int64_t label_rank(const float* logits, int64_t n, int64_t label) {
  if (label < 0 || label >= n) return n;
  const float v = logits[label];
  int64_t rank = 0;
  for (int64_t j = 0; j < n; ++j) rank += logits[j] > v || (j < label && logits[j] == v);
  return rank;
}

int64_t first_argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; ++j)
    if (logits[j] > logits[best]) best = j;
  return best;
}

namespace {
// log Σ exp(x_j) in float64, shifted by the maximum.
double log_sum_exp(const float* x, int64_t n) {
  double m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, static_cast<double>(x[j]));
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(x[j]) - m);
  return m + std::log(s);
}
}  // namespace

double kl_divergence(const float* p, const float* q, int64_t n) {
  const double lp0 = log_sum_exp(p, n), lq0 = log_sum_exp(q, n);
  double kl = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double lp = static_cast<double>(p[j]) - lp0, lq = static_cast<double>(q[j]) - lq0;
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}

double sqnr_db(double signal, double noise) {
  if (!(noise > signal * 1e-20)) return kSqnrCapDb;
  return std::min(kSqnrCapDb, 10.0 * std::log10(signal / noise));
}

int64_t topk_count(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  const auto x = logits.to(torch::kFloat32).contiguous();
  const auto y = labels.to(torch::kInt64).contiguous();
  const int64_t rows = x.size(0), n = x.dim() == 2 ? x.size(1) : 0;
  const float* px = x.data_ptr<float>();
  const int64_t* py = y.data_ptr<int64_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < rows; ++i) count += label_rank(px + i * n, n, py[i]) < k;
  return count;
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
    const double dt = seconds_since(t0);
    char rate[48];
    std::snprintf(rate, sizeof rate, "%.0f img/s",
                  dt > 0 ? static_cast<double>(s.n + b.images.size(0)) / dt : 0.0);
    s.n += b.images.size(0);
    bar.advance(b.images.size(0) + b.skipped, rate);
  }
  s.seconds = seconds_since(t0);
  const int64_t classes = data.num_classes();
  s.tensors["logits"] = logits.empty() ? torch::zeros({0, classes}) : torch::cat(logits, 0);
  s.tensors["labels"] = labels.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(labels, 0);
  s.tensors["positions"] =
      positions.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(positions, 0);
  char buf[96];
  const double rate_done = s.seconds > 0 ? static_cast<double>(s.n) / s.seconds : 0.0;
  if (labelled_)
    std::snprintf(
        buf, sizeof buf, "top-1 %.2f%% (%.0f img/s)",
        s.n ? 100.0 * static_cast<double>(topk_count(s.tensors["logits"], s.tensors["labels"], 1)) /
                  static_cast<double>(s.n)
            : 0.0,
        rate_done);
  else
    std::snprintf(buf, sizeof buf, "%lld images (%.0f img/s)", static_cast<long long>(s.n),
                  rate_done);
  bar.finish(buf);
  return s;
}

ExampleStats ClassificationEvaluator::example_stats(const EvalShard& q, const EvalShard& fp) const {
  const auto ql = q.tensors.at("logits").to(torch::kFloat32).contiguous();
  const auto fl = fp.tensors.at("logits").to(torch::kFloat32).contiguous();
  const auto y = q.tensors.at("labels").to(torch::kInt64).contiguous();
  const auto pos = q.tensors.at("positions").to(torch::kInt64).contiguous();
  const int64_t rows = ql.size(0);
  MPQ_ASSERT(fl.size(0) == rows && y.size(0) == rows && pos.size(0) == rows,
             "quantized and FP shards differ in length");
  ExampleStats s;
  s.names = {"agree", "agree5", "kl", "signal", "noise"};
  if (labelled_)
    s.names.insert(s.names.begin(), {"correct1", "correct5", "fp_correct1", "fp_correct5"});
  const size_t width = s.names.size(), first = labelled_ ? 4 : 0;
  s.skipped = q.skipped;
  s.positions.assign(pos.data_ptr<int64_t>(), pos.data_ptr<int64_t>() + rows);
  s.values.resize(static_cast<size_t>(rows) * s.names.size());
  if (rows == 0) return s;
  const int64_t n = ql.size(1);
  MPQ_ASSERT(fl.size(1) == n, "quantized and FP logits differ in width");
  const float* pq = ql.data_ptr<float>();
  const float* pf = fl.data_ptr<float>();
  const int64_t* py = y.data_ptr<int64_t>();
  // Rows are independent: threads change nothing.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const float *a = pq + i * n, *b = pf + i * n;
    double* v = s.values.data() + static_cast<size_t>(i) * width;
    if (labelled_) {
      const int64_t rq = label_rank(a, n, py[i]), rf = label_rank(b, n, py[i]);
      v[0] = rq < 1;
      v[1] = rq < 5;
      v[2] = rf < 1;
      v[3] = rf < 5;
    }
    const int64_t fp_top = first_argmax(b, n);
    double signal = 0, noise = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double z = b[j], d = static_cast<double>(b[j]) - static_cast<double>(a[j]);
      signal += z * z;
      noise += d * d;
    }
    v[first + 0] = first_argmax(a, n) == fp_top;
    v[first + 1] = label_rank(a, n, fp_top) < 5;
    v[first + 2] = kl_divergence(b, a, n);
    v[first + 3] = signal;
    v[first + 4] = noise;
  }
  return s;
}

json ClassificationEvaluator::metrics(const std::map<std::string, double>& s) const {
  // top-5 counts the label among min(5, classes) logits (a 2-class model's top-5 is 100%).
  const double n = s.at("n");
  auto frac = [&](const char* k) { return n > 0 ? s.at(k) / n : 0.0; };
  json m = {{"agreement", frac("agree")},
            {"agreement_top5", frac("agree5")},
            {"kl", frac("kl")},
            {"sqnr_db", sqnr_db(s.at("signal"), s.at("noise"))},
            {"n_eval", static_cast<int64_t>(n)},
            {"skipped_images", static_cast<int64_t>(s.at("skipped"))}};
  if (labelled_) {
    m["top1"] = frac("correct1");
    m["top5"] = frac("correct5");
    m["fp_top1"] = frac("fp_correct1");
    m["fp_top5"] = frac("fp_correct5");
  }
  return m;
}

}  // namespace mpq::eval
