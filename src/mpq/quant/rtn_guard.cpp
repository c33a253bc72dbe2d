#include "mpq/quant/rtn_guard.h"

#include <torch/torch.h>

#include <algorithm>

#include "mpq/quant/grid.h"

namespace mpq::quant {

QuantizedLayer single_point_layout(int64_t c_out, int64_t d, int bits,
                                   const std::vector<double>& steps) {
  QuantizedLayer q;
  q.bits = bits;
  q.c_out = c_out;
  q.d = d;
  q.max_points = 1;
  q.points.assign(static_cast<size_t>(c_out), 1);
  q.codes.assign(static_cast<size_t>(c_out * d), 0);
  q.scales.resize(static_cast<size_t>(c_out));
  q.point_channel.resize(static_cast<size_t>(c_out));
  q.weight_error.resize(static_cast<size_t>(c_out));
  for (int64_t c = 0; c < c_out; ++c) {
    q.scales[static_cast<size_t>(c)] = static_cast<float>(steps[static_cast<size_t>(c)]);
    q.point_channel[static_cast<size_t>(c)] = static_cast<int32_t>(c);
  }
  return q;
}

RtnComparison guard_against_rtn(const float* w, const SecondMoment& stats, QuantizedLayer& q,
                                bool guard) {
  const int64_t c_out = q.c_out, d = q.d, groups = stats.groups, per = c_out / groups;
  const int L = max_level(q.bits);
  RtnComparison r;
  r.rtn_codes.resize(static_cast<size_t>(c_out * d));
  for (int64_t c = 0; c < c_out; ++c)
    quantize_rtn(w + c * d, d, q.scales[static_cast<size_t>(c)], L, r.rtn_codes.data() + c * d);
  auto wt = torch::from_blob(const_cast<float*>(w), {c_out, d}, torch::kFloat32);
  auto st = torch::from_blob(q.scales.data(), {c_out, 1}, torch::kFloat32).to(torch::kFloat64);
  auto wd = wt.to(torch::kFloat64);
  auto delta = [&](int8_t* codes) {
    return (wd - st * torch::from_blob(codes, {c_out, d}, torch::kInt8).to(torch::kFloat64))
        .to(torch::kFloat32);
  };
  auto dq = delta(q.codes.data()), dr = delta(r.rtn_codes.data());
  r.output_error.resize(static_cast<size_t>(c_out));
  r.rtn_output_error.resize(static_cast<size_t>(c_out));
  r.output_energy.resize(static_cast<size_t>(c_out));
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * per;
    auto e_q = output_errors(stats, g, dq.narrow(0, r0, per));
    auto e_r = output_errors(stats, g, dr.narrow(0, r0, per));
    auto e_0 = output_errors(stats, g, wt.narrow(0, r0, per));
    for (int64_t k = 0; k < per; ++k) {
      const size_t c = static_cast<size_t>(r0 + k), i = static_cast<size_t>(k);
      r.output_error[c] = e_q[i];
      r.rtn_output_error[c] = e_r[i];
      r.output_energy[c] = e_0[i];
      if (guard && e_q[i] > e_r[i]) {
        const int64_t row = r0 + k;
        std::copy(r.rtn_codes.begin() + row * d, r.rtn_codes.begin() + (row + 1) * d,
                  q.codes.begin() + row * d);
        r.output_error[c] = e_r[i];
        r.rows_kept_rtn++;
      }
    }
  }
  for (int64_t c = 0; c < c_out; ++c) {
    double e = 0;
    const double s = q.scales[static_cast<size_t>(c)];
    for (int64_t j = 0; j < d; ++j) {
      const double x = w[c * d + j] - s * q.codes[static_cast<size_t>(c * d + j)];
      e += x * x;
    }
    q.weight_error[static_cast<size_t>(c)] = static_cast<float>(e);
  }
  return r;
}

}  // namespace mpq::quant
