#include "mpq/quant/gptq.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <string>

#include "mpq/quant/grid.h"
#include "mpq/quant/rtn_guard.h"
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

// Rows of one group: codes (in the original column order) and δ = w - s k (column order perm).
// lc is the lower Cholesky factor of the reversed H (J H J = lc lcᵀ), so the lower factor of
// H = MᵀM is M[j][i] = lc[d-1-i][d-1-j]; only the blocks needed are formed.
void sweep_group(const double* wp, int64_t rows, int64_t d, const std::vector<int64_t>& perm,
                 const torch::Tensor& lc, const double* steps, int L, int64_t block, int8_t* codes,
                 double* delta) {
  const double* lp = lc.data_ptr<double>();
  auto M = [&](int64_t j, int64_t i) { return lp[(d - 1 - i) * d + (d - 1 - j)]; };
  auto dt = torch::from_blob(delta, {rows, d}, torch::kFloat64);
  std::vector<double> corr, mb;
  for (int64_t b0 = 0; b0 < d; b0 += block) {
    const int64_t b1 = std::min(d, b0 + block), nb = b1 - b0;
    // Corrections from the columns of earlier blocks: C[r, j - b0] = Σ_{i<b0} M_ji δ_ri, with
    // M[b0:b1, 0:b0]ᵀ = lc[d-b0:d, d-b1:d-b0] flipped in both dimensions.
    corr.assign(static_cast<size_t>(rows * nb), 0.0);
    if (b0 > 0) {
      auto mt = lc.narrow(0, d - b0, b0).narrow(1, d - b1, nb).flip({0, 1});
      auto c = dt.narrow(1, 0, b0).mm(mt).contiguous();
      std::copy(c.data_ptr<double>(), c.data_ptr<double>() + rows * nb, corr.begin());
    }
    // The block's own lower triangle M[b0:b1, b0:b1], contiguous.
    mb.assign(static_cast<size_t>(nb * nb), 0.0);
    for (int64_t j = b0; j < b1; ++j)
      for (int64_t i = b0; i <= j; ++i) mb[static_cast<size_t>((j - b0) * nb + (i - b0))] = M(j, i);
    for (int64_t r = 0; r < rows; ++r) {
      const double s = steps[r];
      double* dr = delta + r * d;
      const double* wr = wp + r * d;
      for (int64_t j = b0; j < b1; ++j) {
        double cj = corr[static_cast<size_t>(r * nb + (j - b0))];
        const double* mj = mb.data() + (j - b0) * nb - b0;  // mj[i] = M(j, i), i in [b0, j]
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
  q = single_point_layout(c_out, d, bits, steps);

  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * per;
    torch::Tensor lc;
    std::vector<int64_t> perm(static_cast<size_t>(d));
    std::vector<uint8_t> dead(static_cast<size_t>(d));
    {
      torch::Tensor hr;
      {
        auto h = stats.dense(g).contiguous();  // [d, d] float64: Σ (H = 2Σ; the scale cancels)
        double* hp = h.data_ptr<double>();
        double trace = 0;
        for (int64_t j = 0; j < d; ++j) {
          double& hjj = hp[j * d + j];
          dead[static_cast<size_t>(j)] = hjj == 0.0;
          res.dead_columns += dead[static_cast<size_t>(j)];
          if (hjj == 0.0) hjj = 1.0;
          trace += hjj;
        }
        // Column order: act-order sorts by descending diag H (stable: ties keep input order).
        std::iota(perm.begin(), perm.end(), 0);
        if (o.act_order)
          std::stable_sort(perm.begin(), perm.end(),
                           [&](int64_t a, int64_t b) { return hp[a * d + a] > hp[b * d + b]; });
        const double lambda = o.damp * trace / static_cast<double>(d);
        for (int64_t j = 0; j < d; ++j) hp[j * d + j] += lambda;
        // Reversed order for the factorization: J P H Pᵀ J.
        std::vector<int64_t> rev(perm.rbegin(), perm.rend());
        auto ridx = torch::from_blob(rev.data(), {d}, torch::kInt64);
        hr = h.index_select(0, ridx).index_select(1, ridx);
      }  // H freed: at most three d x d float64 matrices alive at once
      auto [f, info] = torch::linalg_cholesky_ex(hr);
      hr = torch::Tensor();
      if (info.item<int64_t>() != 0)
        throw InputError("GPTQ: H + λI of a layer [" + std::to_string(c_out) + " x " +
                         std::to_string(d) + "] is not positive definite (group " +
                         std::to_string(g) + "); raise weights.gptq.damp above " +
                         std::to_string(o.damp));
      lc = f.contiguous();
    }
    // Working weights in column order perm, dead inputs zeroed.
    std::vector<double> wp(static_cast<size_t>(per * d)), delta(static_cast<size_t>(per * d));
    for (int64_t r = 0; r < per; ++r)
      for (int64_t j = 0; j < d; ++j) {
        const int64_t src = perm[static_cast<size_t>(j)];
        wp[static_cast<size_t>(r * d + j)] =
            dead[static_cast<size_t>(src)] ? 0.0 : w[(r0 + r) * d + src];
      }
    sweep_group(wp.data(), per, d, perm, lc, steps.data() + r0, L, o.block,
                q.codes.data() + r0 * d, delta.data());
  }

  // Errors against the original weights (dead inputs included) under the undamped Σ, and the
  // guard (header).
  auto cmp = guard_against_rtn(w, stats, q);
  res.output_error = std::move(cmp.output_error);
  res.rtn_output_error = std::move(cmp.rtn_output_error);
  res.output_energy = std::move(cmp.output_energy);
  res.rows_kept_rtn = cmp.rows_kept_rtn;
  return res;
}

std::vector<GptqResult> quantize_gptq_layers(const std::vector<GptqLayer>& layers,
                                             const GptqOptions& options,
                                             const std::function<void()>& done) {
  const size_t n = layers.size();
  std::vector<size_t> order(n);
  std::vector<double> cost(n);
  for (size_t k = 0; k < n; ++k) {
    const auto& l = layers[k];
    const double d = static_cast<double>(l.d);
    cost[k] = static_cast<double>(l.groups) * d * d * d / 3 + static_cast<double>(l.c_out) * d * d;
    order[k] = k;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<GptqResult> res(n);
  std::vector<std::exception_ptr> errors(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < n; ++i) {
    const size_t k = order[i];
    const auto& l = layers[k];
    try {
      res[k] = quantize_gptq_layer(l.w, l.c_out, l.d, l.groups, l.bits, l.granularity, *l.stats,
                                   options);
    } catch (...) {
      errors[k] = std::current_exception();
    }
    if (done) {
#pragma omp critical(mpq_gptq_done)
      done();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return res;
}

}  // namespace mpq::quant
