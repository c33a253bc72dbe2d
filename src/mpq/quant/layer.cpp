#include "mpq/quant/layer.h"

#include <cmath>
#include <limits>

#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/ocs.h"
#include "mpq/util/error.h"

namespace mpq::quant {

const char* granularity_name(Granularity g) {
  return g == Granularity::kPerChannel ? "per_channel" : "per_layer";
}

void QuantizedLayer::dequantize(float* out) const {
  std::vector<double> acc(static_cast<size_t>(c_out * d), 0.0);
  for (int64_t p = 0; p < total_points(); ++p) {
    double s = scales[static_cast<size_t>(p)];
    double* row = acc.data() + static_cast<int64_t>(point_channel[static_cast<size_t>(p)]) * d;
    const int8_t* k = codes.data() + p * d;
    for (int64_t j = 0; j < d; ++j) row[j] += s * k[j];
  }
  for (size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<float>(acc[i]);
}

std::vector<float> QuantizedLayer::effective_weights() const {
  std::vector<float> stored(static_cast<size_t>(c_out * d));
  dequantize(stored.data());
  if (ocs_source.empty()) return stored;
  OcsSplit split;
  split.c_out = c_out;
  split.k = ocs_k;
  split.c_in = original_d() / ocs_k;
  split.source = ocs_source;
  return ocs_merge(split, stored);
}

double QuantizedLayer::code_bits() const {
  double total = 0;
  for (int64_t p = 0; p < total_points(); ++p) {
    int32_t c = point_channel[static_cast<size_t>(p)];
    total += static_cast<double>(d) *
             (channel_bits.empty() ? bits : channel_bits[static_cast<size_t>(c)]);
  }
  return total;
}

double extra_macs(const QuantizedLayer& q, double layer_macs) {
  if (q.c_out == 0) return 0;
  double per_channel = layer_macs / static_cast<double>(q.c_out);
  double points = static_cast<double>(q.total_points() - q.c_out) * per_channel;
  double d0 = static_cast<double>(q.original_d());
  double split = d0 > 0 ? layer_macs * static_cast<double>(q.d - q.original_d()) / d0 : 0.0;
  return points + split;
}

QuantizedLayer pack_channels(const std::vector<GreedyChannel>& channels, int bits, int max_points,
                             const std::vector<int>& n_used) {
  QuantizedLayer q;
  q.bits = bits;
  q.c_out = static_cast<int64_t>(channels.size());
  q.d = channels.empty() ? 0 : channels[0].d();
  q.max_points = max_points;
  q.points.resize(channels.size());
  q.weight_error.assign(channels.size() * static_cast<size_t>(max_points),
                        std::numeric_limits<float>::quiet_NaN());
  for (size_t c = 0; c < channels.size(); ++c) {
    const auto& ch = channels[c];
    int n = n_used.empty() ? ch.n_points() : n_used[c];
    MPQ_ASSERT(n >= 1 && n <= ch.n_points() && n <= max_points, "bad point count");
    q.points[c] = n;
    for (int i = 0; i < n; ++i) {
      q.scales.push_back(ch.step(i));
      q.point_channel.push_back(static_cast<int32_t>(c));
      q.codes.insert(q.codes.end(), ch.codes(i), ch.codes(i) + q.d);
    }
  }
  return q;
}

namespace {
// ||w_c - sum of the first n points||^2, recomputed from the stored float scales.
double channel_error(const float* w, const QuantizedLayer& q, int64_t first_point, int n) {
  double e = 0;
  for (int64_t j = 0; j < q.d; ++j) {
    double v = w[j];
    for (int i = 0; i < n; ++i)
      v -= static_cast<double>(q.scales[static_cast<size_t>(first_point + i)]) *
           q.codes[static_cast<size_t>((first_point + i) * q.d + j)];
    e += v * v;
  }
  return e;
}
}  // namespace

double range_step(const float* x, int64_t n, int L, const RangeSpec& r) {
  switch (r.method) {
    case RangeMethod::kMax:
      return max_range_step(x, n, L);
    case RangeMethod::kMse: {
      std::vector<double> v(x, x + n);
      return exact_step_search(v.data(), n, L, nullptr, nullptr).step;
    }
    case RangeMethod::kAciqLaplace:
      return aciq_alpha(Prior::kLaplace, fit_prior_scale(Prior::kLaplace, x, n), L, false) / L;
    case RangeMethod::kAciqGaussian:
      return aciq_alpha(Prior::kGaussian, fit_prior_scale(Prior::kGaussian, x, n), L, false) / L;
    case RangeMethod::kPercentile:
      return abs_percentile(x, n, r.percentile) / L;
  }
  return 0.0;
}

QuantizedLayer quantize_single_point_layer(const float* w, int64_t c_out, int64_t d, int bits,
                                           Granularity granularity, const RangeSpec& range) {
  int L = max_level(bits);
  double layer_step =
      granularity == Granularity::kPerLayer ? range_step(w, c_out * d, L, range) : 0.0;
  std::vector<GreedyChannel> channels;
  channels.reserve(static_cast<size_t>(c_out));
  for (int64_t c = 0; c < c_out; ++c) {
    const float* row = w + c * d;
    channels.emplace_back(row, d);
    double step = granularity == Granularity::kPerLayer ? layer_step : range_step(row, d, L, range);
    channels.back().add_fixed_point(step, bits);
  }
  QuantizedLayer q = pack_channels(channels, bits, 1);
  for (int64_t c = 0; c < c_out; ++c)
    q.weight_error[static_cast<size_t>(c)] =
        static_cast<float>(channels[static_cast<size_t>(c)].residual_sq_norm());
  return q;
}

QuantizedLayer quantize_rtn_layer(const float* w, int64_t c_out, int64_t d, int bits,
                                  Granularity granularity) {
  return quantize_single_point_layer(w, c_out, d, bits, granularity, RangeSpec{});
}

double layer_weight_sq_error(const float* w, const QuantizedLayer& q) {
  double total = 0;
  if (!q.ocs_source.empty()) {
    auto eff = q.effective_weights();
    for (size_t i = 0; i < eff.size(); ++i) {
      double e = static_cast<double>(w[i]) - eff[i];
      total += e * e;
    }
    return total;
  }
  int64_t p = 0;
  for (int64_t c = 0; c < q.c_out; ++c) {
    int n = q.points[static_cast<size_t>(c)];
    total += channel_error(w + c * q.d, q, p, n);
    p += n;
  }
  return total;
}

}  // namespace mpq::quant
