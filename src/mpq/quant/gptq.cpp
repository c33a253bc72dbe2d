#include "mpq/quant/gptq.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "mpq/quant/grid.h"
#include "mpq/util/error.h"

namespace mpq::quant {

std::vector<double> gptq_steps(const float* w, int64_t c_out, int64_t d, int bits,
                               Granularity granularity, RangeMethod grid) {
  MPQ_ASSERT(grid == RangeMethod::kMax || grid == RangeMethod::kMse, "GPTQ grid: max or mse");
  const int L = max_level(bits);
  const RangeSpec spec{grid, 0};
  std::vector<double> steps(static_cast<size_t>(c_out));
  if (granularity == Granularity::kPerLayer) {
    // Stored steps are float32 (QuantizedLayer::scales): round first, then quantize on it.
    double s = static_cast<float>(range_step(w, c_out * d, L, spec));
    std::fill(steps.begin(), steps.end(), s);
  } else {
    for (int64_t c = 0; c < c_out; ++c)
      steps[static_cast<size_t>(c)] = static_cast<float>(range_step(w + c * d, d, L, spec));
  }
  return steps;
}

namespace {

// Rows [r0, r0 + rows) of one group: codes (in the original column order) and δ = w - s k.
void sweep_group(const double* wp, int64_t rows, int64_t d, const std::vector<int64_t>& perm,
                 const torch::Tensor& m, const double* steps, int L, int64_t block, int8_t* codes,
                 double* delta) {
  const double* M = m.data_ptr<double>();  // [d, d] lower triangular, H = MᵀM
  auto dt = torch::from_blob(delta, {rows, d}, torch::kFloat64);
  std::vector<double> corr;
  for (int64_t b0 = 0; b0 < d; b0 += block) {
    const int64_t b1 = std::min(d, b0 + block), nb = b1 - b0;
    // Corrections from the columns of earlier blocks: C[r, j - b0] = Σ_{i<b0} M_ji δ_ri.
    corr.assign(static_cast<size_t>(rows * nb), 0.0);
    if (b0 > 0) {
      auto c = dt.narrow(1, 0, b0).mm(m.narrow(0, b0, nb).narrow(1, 0, b0).t()).contiguous();
      std::copy(c.data_ptr<double>(), c.data_ptr<double>() + rows * nb, corr.begin());
    }
    for (int64_t r = 0; r < rows; ++r) {
      const double s = steps[r];
      double* dr = delta + r * d;
      const double* wr = wp + r * d;
      for (int64_t j = b0; j < b1; ++j) {
        double cj = corr[static_cast<size_t>(r * nb + (j - b0))];
        const double* mj = M + j * d;
        for (int64_t i = b0; i < j; ++i) cj += mj[i] * dr[i];
        const double x = wr[j] + cj / mj[j];
        const int k = quantize_value(x, s, L);
        codes[r * d + perm[static_cast<size_t>(j)]] = static_cast<int8_t>(k);
        dr[j] = wr[j] - s * k;
      }
    }
  }
}

}  // namespace

GptqResult quantize_gptq_layer(const float* w, int64_t c_out, int64_t d, int64_t groups, int bits,
                               Granularity granularity, const SecondMoment& stats,
                               const GptqOptions& o) {
  MPQ_ASSERT(c_out > 0 && d > 0 && groups >= 1 && c_out % groups == 0, "layer shape");
  MPQ_ASSERT(stats.d == d && stats.groups == groups, "statistics shape");
  MPQ_ASSERT(o.block >= 1 && o.damp >= 0, "GPTQ options");
  const int L = max_level(bits);
  const int64_t per = c_out / groups;
  const auto steps = gptq_steps(w, c_out, d, bits, granularity, o.grid);

  GptqResult res;
  QuantizedLayer& q = res.q;
  q.bits = bits;
  q.c_out = c_out;
  q.d = d;
  q.max_points = 1;
  q.points.assign(static_cast<size_t>(c_out), 1);
  q.codes.assign(static_cast<size_t>(c_out * d), 0);
  q.scales.resize(static_cast<size_t>(c_out));
  q.point_channel.resize(static_cast<size_t>(c_out));
  q.weight_error.resize(static_cast<size_t>(c_out));
  res.output_error.resize(static_cast<size_t>(c_out));
  res.rtn_output_error.resize(static_cast<size_t>(c_out));
  res.output_energy.resize(static_cast<size_t>(c_out));

  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * per;
    const auto sigma = stats.dense(g).contiguous();  // [d, d] float64, undamped
    auto h = sigma.clone();
    auto hd = h.diagonal();
    auto dead = hd.eq(0);
    res.dead_columns += dead.sum().item<int64_t>();
    hd.masked_fill_(dead, 1.0);
    // Column order: act-order sorts by descending diag H (stable: ties keep input order).
    std::vector<int64_t> perm(static_cast<size_t>(d));
    std::iota(perm.begin(), perm.end(), 0);
    if (o.act_order) {
      const double* hdp = hd.contiguous().data_ptr<double>();
      std::stable_sort(perm.begin(), perm.end(),
                       [&](int64_t a, int64_t b) { return hdp[a] > hdp[b]; });
    }
    const double lambda = o.damp * hd.mean().item<double>();
    hd.add_(lambda);
    auto pidx = torch::from_blob(perm.data(), {d}, torch::kInt64);
    auto hp = h.index_select(0, pidx).index_select(1, pidx);
    // H = MᵀM with M lower: M = J·chol(J H J)ᵀ·J, J the reversal.
    auto rev = hp.flip({0, 1});
    auto [lc, info] = torch::linalg_cholesky_ex(rev);
    if (info.item<int64_t>() != 0)
      throw InputError("GPTQ: H + λI of a layer [" + std::to_string(c_out) + " x " +
                       std::to_string(d) + "] is not positive definite (group " +
                       std::to_string(g) + "); raise weights.gptq.damp above " +
                       std::to_string(o.damp));
    auto m = lc.t().flip({0, 1}).contiguous();

    // Working weights in column order perm, dead inputs zeroed.
    const uint8_t* deadp = dead.to(torch::kUInt8).contiguous().data_ptr<uint8_t>();
    std::vector<double> wp(static_cast<size_t>(per * d)), delta(static_cast<size_t>(per * d));
    for (int64_t r = 0; r < per; ++r)
      for (int64_t j = 0; j < d; ++j) {
        const int64_t src = perm[static_cast<size_t>(j)];
        wp[static_cast<size_t>(r * d + j)] = deadp[src] ? 0.0 : w[(r0 + r) * d + src];
      }
    sweep_group(wp.data(), per, d, perm, m, steps.data() + r0, L, o.block,
                q.codes.data() + r0 * d, delta.data());

    // Errors against the original weights (dead inputs included), under the undamped Σ.
    auto wt = torch::from_blob(const_cast<float*>(w + r0 * d), {per, d}, torch::kFloat32)
                  .to(torch::kFloat64);
    auto st = torch::from_blob(const_cast<double*>(steps.data() + r0), {per, 1}, torch::kFloat64);
    auto kt = torch::from_blob(q.codes.data() + r0 * d, {per, d}, torch::kInt8).to(torch::kFloat64);
    auto dg = wt - st * kt;
    std::vector<int8_t> rtn(static_cast<size_t>(per * d));
    for (int64_t r = 0; r < per; ++r)
      quantize_rtn(w + (r0 + r) * d, d, steps[static_cast<size_t>(r0 + r)], L,
                   rtn.data() + r * d);
    auto dr = wt - st * torch::from_blob(rtn.data(), {per, d}, torch::kInt8).to(torch::kFloat64);
    auto e_g = (dg.mm(sigma) * dg).sum(1).contiguous();
    auto e_r = (dr.mm(sigma) * dr).sum(1).contiguous();
    auto e_0 = (wt.mm(sigma) * wt).sum(1).contiguous();
    auto we = (dg * dg).sum(1).contiguous();
    for (int64_t r = 0; r < per; ++r) {
      const size_t c = static_cast<size_t>(r0 + r);
      q.scales[c] = static_cast<float>(steps[c]);
      q.point_channel[c] = static_cast<int32_t>(c);
      q.weight_error[c] = static_cast<float>(we.data_ptr<double>()[r]);
      res.output_error[c] = e_g.data_ptr<double>()[r];
      res.rtn_output_error[c] = e_r.data_ptr<double>()[r];
      res.output_energy[c] = e_0.data_ptr<double>()[r];
    }
  }
  return res;
}

}  // namespace mpq::quant
