#include "mpq/ptq/baselines.h"

#include <cmath>
#include <limits>
#include <map>

#include "mpq/quant/bit_alloc.h"
#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/ocs.h"
#include "mpq/quant/output_error.h"
#include "mpq/util/error.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {
json base_attrs(int bits, const WeightConfig& w) {
  return {{"bits", bits},
          {"method", weight_method_name(w.method)},
          {"granularity", quant::granularity_name(w.granularity)}};
}
}  // namespace

LayerOutcome quantize_single_point(const model::Network& net, const model::LayerInfo& L, int bits,
                                   const WeightConfig& w) {
  LayerOutcome o;
  o.quantized = true;
  o.q = quant::quantize_single_point_layer(net.fp_weight(L.index).data_ptr<float>(), L.c_out, L.d(),
                                           bits, w.granularity, w.range);
  o.attrs = base_attrs(bits, w);
  if (w.method == WeightMethod::kPercentile) o.attrs["percentile"] = w.range.percentile;
  if (w.method == WeightMethod::kAciq)
    o.attrs["aciq_prior"] =
        w.range.method == quant::RangeMethod::kAciqLaplace ? "laplace" : "gaussian";
  return o;
}

LayerOutcome quantize_ocs(const model::Network& net, const model::LayerInfo& L, int bits,
                          const WeightConfig& w) {
  LayerOutcome o;
  o.quantized = true;
  o.attrs = base_attrs(bits, w);
  o.attrs["ocs_expand_ratio"] = w.ocs_expand_ratio;
  const float* fw = net.fp_weight(L.index).data_ptr<float>();
  bool grouped = L.kind == model::LayerKind::kConv2d && L.groups > 1;
  if (grouped) {
    o.q = quant::quantize_single_point_layer(fw, L.c_out, L.d(), bits, w.granularity, w.ocs_range);
    o.attrs["ocs"] =
        "not applicable (grouped/depthwise conv: a split input channel cannot join a group)";
    o.attrs["ocs_splits"] = 0;
    return o;
  }
  const int64_t k = L.kh * L.kw, c_in = L.d() / k;
  int64_t splits = quant::ocs_split_count(w.ocs_expand_ratio, c_in);
  auto split = quant::ocs_split(fw, L.c_out, c_in, k, splits);
  int64_t d2 = (c_in + splits) * k;
  o.q = quant::quantize_single_point_layer(split.weight.data(), L.c_out, d2, bits, w.granularity,
                                           w.ocs_range);
  o.q.ocs_source = split.source;
  o.q.ocs_k = k;
  o.attrs["ocs"] = "applied";
  o.attrs["ocs_splits"] = splits;
  return o;
}

LayerOutcome quantize_bit_alloc(const model::Network& net, const model::LayerInfo& L, int bits,
                                const WeightConfig& w, const quant::SecondMoment* stats) {
  const int lo = quant::kMinBits, hi = quant::kMaxBits, W = hi - lo + 1;
  const int64_t C = L.c_out, d = L.d();
  const float* fw = net.fp_weight(L.index).data_ptr<float>();
  double target = w.bit_alloc_average > 0 ? w.bit_alloc_average : bits;
  if (target < lo || target > hi)
    throw ConfigError("/weights/bit_alloc/average_bits: must be in [2, 8]");
  const int64_t groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1, per = C / groups;
  // Per-layer granularity: one clipping value α for the layer (MSE-optimal at the target bits);
  // each channel's step is α / L_b for its own b.
  double alpha = 0;
  if (w.granularity == quant::Granularity::kPerLayer) {
    int Lt = quant::max_level(static_cast<int>(std::lround(target)));
    alpha = quant::range_step(fw, C * d, Lt, quant::RangeSpec{quant::RangeMethod::kMse, 0}) * Lt;
  }
  // steps[c][j], codes per (c, j) and errors at every bit width.
  std::vector<double> steps(static_cast<size_t>(C * W));
  std::vector<std::vector<int8_t>> codes(static_cast<size_t>(C * W),
                                         std::vector<int8_t>(static_cast<size_t>(d)));
  std::vector<double> errors(static_cast<size_t>(C * W));
  for (int j = 0; j < W; ++j) {
    int Lb = quant::max_level(lo + j);
    auto deltas = torch::empty({C, d}, torch::kFloat32);
    float* dp = deltas.data_ptr<float>();
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t c = 0; c < C; ++c) {
      std::vector<double> row(fw + c * d, fw + (c + 1) * d);
      auto& k = codes[static_cast<size_t>(c * W + j)];
      double step = w.granularity == quant::Granularity::kPerLayer
                        ? alpha / Lb
                        : quant::exact_step_search(row.data(), d, Lb, nullptr, nullptr).step;
      double e = quant::weighted_rtn_error(row.data(), d, step, Lb, nullptr, k.data());
      steps[static_cast<size_t>(c * W + j)] = static_cast<float>(step);
      errors[static_cast<size_t>(c * W + j)] = e;
      for (int64_t t = 0; t < d; ++t)
        dp[c * d + t] =
            static_cast<float>(row[static_cast<size_t>(t)] - step * k[static_cast<size_t>(t)]);
    }
    if (stats && w.bit_alloc_by_output_error) {
      for (int64_t g = 0; g < groups; ++g) {
        auto e = quant::output_errors(*stats, g, deltas.narrow(0, g * per, per).contiguous());
        for (int64_t i = 0; i < per; ++i)
          errors[static_cast<size_t>((g * per + i) * W + j)] = e[static_cast<size_t>(i)];
      }
    }
  }
  auto alloc = quant::allocate_bits(errors, C, lo, hi, target);
  LayerOutcome o;
  o.quantized = true;
  auto& q = o.q;
  q.bits = static_cast<int>(std::lround(target));
  q.c_out = C;
  q.d = d;
  q.max_points = 1;
  q.points.assign(static_cast<size_t>(C), 1);
  q.weight_error.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    int b = alloc.bits[static_cast<size_t>(c)];
    size_t at = static_cast<size_t>(c * W + (b - lo));
    q.channel_bits.push_back(static_cast<int8_t>(b));
    q.scales.push_back(static_cast<float>(steps[at]));
    q.point_channel.push_back(static_cast<int32_t>(c));
    q.codes.insert(q.codes.end(), codes[at].begin(), codes[at].end());
    double e = 0;
    for (int64_t t = 0; t < d; ++t) {
      double r = static_cast<double>(fw[c * d + t]) -
                 static_cast<double>(q.scales.back()) * codes[at][static_cast<size_t>(t)];
      e += r * r;
    }
    q.weight_error[static_cast<size_t>(c)] = static_cast<float>(e);
  }
  o.attrs = base_attrs(q.bits, w);
  o.attrs["average_bits"] = alloc.average;
  o.attrs["target_average_bits"] = target;
  o.attrs["bit_alloc_metric"] = stats && w.bit_alloc_by_output_error ? "output" : "weight";
  std::vector<int> hist(static_cast<size_t>(W), 0);
  for (int b : alloc.bits) hist[static_cast<size_t>(b - lo)]++;
  json h = json::object();
  for (int j = 0; j < W; ++j)
    if (hist[static_cast<size_t>(j)]) h[std::to_string(lo + j)] = hist[static_cast<size_t>(j)];
  o.attrs["bits_histogram"] = h.dump();
  return o;
}

std::vector<LayerOutcome> quantize_layer_bits(
    const model::Network& net, const std::vector<int>& layers, const std::vector<int>& base_bits,
    const WeightConfig& w, const std::vector<quant::SecondMoment>& stats, json* summary) {
  MPQ_ASSERT(stats.size() == layers.size(), "layer_bits needs every layer's statistics");
  WeightConfig mse = w;
  mse.range = quant::RangeSpec{quant::RangeMethod::kMse, 0};
  std::vector<std::vector<LayerOutcome>> cands(layers.size());
  std::vector<quant::LayerBitTable> tables(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto& L = net.layers()[static_cast<size_t>(layers[k])];
    const torch::Tensor fw = net.fp_weight(L.index).reshape({L.c_out, L.d()}).contiguous();
    const int64_t groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1,
                  per = L.c_out / groups;
    auto total_error = [&](const torch::Tensor& rows) {  // sum over channels of δᵀΣδ
      double e = 0;
      for (int64_t g = 0; g < groups; ++g)
        for (double v :
             quant::output_errors(stats[k], g, rows.narrow(0, g * per, per).contiguous()))
          e += v;
      return e;
    };
    auto& t = tables[k];
    t.base_bits = base_bits[k];
    t.macs = static_cast<double>(L.macs);
    t.energy = std::max(total_error(fw), std::numeric_limits<double>::min());
    const int top = std::max(base_bits[k], w.layer_bits_max);
    json by_bits = json::object();
    for (int b = base_bits[k]; b <= top; ++b) {
      LayerOutcome o = quantize_single_point(net, L, b, mse);
      auto deq = torch::empty({L.c_out, L.d()}, torch::kFloat32);
      o.q.dequantize(deq.data_ptr<float>());
      t.error.push_back(total_error(fw - deq));
      by_bits[std::to_string(b)] = t.error.back();
      o.attrs["method"] = weight_method_name(w.method);
      o.attrs["base_bits"] = base_bits[k];
      cands[k].push_back(std::move(o));
    }
    for (auto& o : cands[k]) o.attrs["output_error_by_bits"] = by_bits;
  }
  const auto alloc = quant::allocate_layer_bits(tables, w.bits, w.layer_bits_budget);
  std::vector<LayerOutcome> out;
  std::map<int, int> histogram;
  for (size_t k = 0; k < layers.size(); ++k) {
    const int b = alloc.bits[k];
    ++histogram[b];
    out.push_back(std::move(cands[k][static_cast<size_t>(b - base_bits[k])]));
  }
  double macs = 0;
  for (const auto& t : tables) macs += t.macs;
  json hist = json::object();
  for (const auto& [b, n] : histogram) hist[std::to_string(b)] = n;
  (*summary)["layer_bits_spent_pct"] = macs > 0 ? 100.0 * alloc.spent / macs : 0.0;
  (*summary)["layer_bits_budget_pct"] = 100.0 * w.layer_bits_budget;
  (*summary)["layer_bits_histogram"] = hist.dump();
  return out;
}

}  // namespace mpq::ptq
