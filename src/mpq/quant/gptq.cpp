#include "mpq/quant/gptq.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <numeric>
#include <string>

#include "mpq/quant/grid.h"
#include "mpq/quant/rtn_guard.h"
#include "mpq/util/error.h"
#include "mpq/util/stopwatch.h"

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
// `round(r, j, x)` rounds the value x of row r, column j (original order), writes its codes and
// returns the value they represent.
template <class Round>
void sweep_group(const double* wp, int64_t rows, int64_t d, const torch::Tensor& lc, int64_t block,
                 double* delta, Round round) {
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
      double* dr = delta + r * d;
      const double* wr = wp + r * d;
      for (int64_t j = b0; j < b1; ++j) {
        double cj = corr[static_cast<size_t>(r * nb + (j - b0))];
        const double* mj = mb.data() + (j - b0) * nb - b0;  // mj[i] = M(j, i), i in [b0, j]
        for (int64_t i = b0; i < j; ++i) cj += mj[i] * dr[i];
        dr[j] = wr[j] - round(r, j, wr[j] + cj / mj[j]);
      }
    }
  }
}

// One group's column order, dead inputs and the factor sweep_group needs.
struct GroupFactor {
  torch::Tensor lc;           // lower Cholesky factor of J P (H + λI) Pᵀ J
  std::vector<int64_t> perm;  // column order (act-order or the input order)
  std::vector<uint8_t> dead;  // inputs with H_jj = 0 (original order)
  int64_t dead_count = 0;
};

GroupFactor factor_group(const SecondMoment& stats, int64_t g, int64_t c_out,
                         const GptqOptions& o) {
  const int64_t d = stats.d;
  GroupFactor f;
  f.perm.resize(static_cast<size_t>(d));
  f.dead.resize(static_cast<size_t>(d));
  torch::Tensor hr;
  {
    auto h = stats.dense(g).contiguous();  // [d, d] float64: Σ (H = 2Σ; the scale cancels)
    double* hp = h.data_ptr<double>();
    double trace = 0;
    for (int64_t j = 0; j < d; ++j) {
      double& hjj = hp[j * d + j];
      f.dead[static_cast<size_t>(j)] = hjj == 0.0;
      f.dead_count += f.dead[static_cast<size_t>(j)];
      if (hjj == 0.0) hjj = 1.0;
      trace += hjj;
    }
    // Column order: act-order sorts by descending diag H (stable: ties keep input order).
    std::iota(f.perm.begin(), f.perm.end(), 0);
    if (o.act_order)
      std::stable_sort(f.perm.begin(), f.perm.end(),
                       [&](int64_t a, int64_t b) { return hp[a * d + a] > hp[b * d + b]; });
    const double lambda = o.damp * trace / static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) hp[j * d + j] += lambda;
    // Reversed order for the factorization: J P H Pᵀ J.
    std::vector<int64_t> rev(f.perm.rbegin(), f.perm.rend());
    auto ridx = torch::from_blob(rev.data(), {d}, torch::kInt64);
    hr = h.index_select(0, ridx).index_select(1, ridx);
  }  // H freed: at most three d x d float64 matrices alive at once
  auto [lc, info] = torch::linalg_cholesky_ex(hr);
  hr = torch::Tensor();
  if (info.item<int64_t>() != 0)
    throw InputError("GPTQ: H + λI of a layer [" + std::to_string(c_out) + " x " +
                     std::to_string(d) + "] is not positive definite (group " + std::to_string(g) +
                     "); raise weights.gptq.damp above " + std::to_string(o.damp));
  f.lc = lc.contiguous();
  return f;
}

// Rows [r0, r0 + rows) of w in column order f.perm, dead inputs zeroed.
std::vector<double> working_weights(const float* w, int64_t r0, int64_t rows, int64_t d,
                                    const GroupFactor& f) {
  std::vector<double> wp(static_cast<size_t>(rows * d));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const int64_t src = f.perm[static_cast<size_t>(j)];
      wp[static_cast<size_t>(r * d + j)] =
          f.dead[static_cast<size_t>(src)] ? 0.0 : w[(r0 + r) * d + src];
    }
  return wp;
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
    const GroupFactor f = factor_group(stats, g, c_out, o);
    res.dead_columns += f.dead_count;
    auto wp = working_weights(w, r0, per, d, f);
    std::vector<double> delta(static_cast<size_t>(per * d));
    int8_t* codes = q.codes.data() + r0 * d;
    sweep_group(wp.data(), per, d, f.lc, o.block, delta.data(),
                [&](int64_t r, int64_t j, double x) {
                  const double s = steps[static_cast<size_t>(r0 + r)];
                  const int k = quantize_value(x, s, L);
                  codes[r * d + f.perm[static_cast<size_t>(j)]] = static_cast<int8_t>(k);
                  return s * k;
                });
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

GptqFeedback gptq_feedback(const float* w, const SecondMoment& stats, const GptqOptions& o,
                           QuantizedLayer& q) {
  const int64_t c_out = q.c_out, d = q.d, groups = stats.groups;
  MPQ_ASSERT(c_out > 0 && groups >= 1 && c_out % groups == 0, "layer shape");
  MPQ_ASSERT(stats.d == d && q.ocs_source.empty() && q.channel_bits.empty(),
             "GPTQ feedback: statistics shape, one precision, no split channels");
  MPQ_ASSERT(o.block >= 1 && o.damp >= 0, "GPTQ options");
  const int L = max_level(q.bits);
  const int64_t per = c_out / groups;
  std::vector<int64_t> first(static_cast<size_t>(c_out) + 1, 0);  // first point of each channel
  for (int64_t c = 0; c < c_out; ++c)
    first[static_cast<size_t>(c) + 1] =
        first[static_cast<size_t>(c)] + q.points[static_cast<size_t>(c)];
  MPQ_ASSERT(first.back() == q.total_points(), "points of the channels");
  const std::vector<int8_t> before = q.codes;

  GptqFeedback res;
  res.output_error_before.resize(static_cast<size_t>(c_out));
  res.output_error.resize(static_cast<size_t>(c_out));
  auto deltas = [&](int64_t r0) {  // w - w~ of the group's rows, float32 as output_errors takes
    auto t = torch::empty({per, d}, torch::kFloat32);
    float* tp = t.data_ptr<float>();
    for (int64_t r = 0; r < per; ++r) {
      const auto c = static_cast<size_t>(r0 + r);
      for (int64_t j = 0; j < d; ++j) {
        double v = w[(r0 + r) * d + j];
        for (int64_t p = first[c]; p < first[c + 1]; ++p)
          v -= static_cast<double>(q.scales[static_cast<size_t>(p)]) *
               q.codes[static_cast<size_t>(p * d + j)];
        tp[r * d + j] = static_cast<float>(v);
      }
    }
    return t;
  };
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * per;
    auto e0 = output_errors(stats, g, deltas(r0));
    const GroupFactor f = factor_group(stats, g, c_out, o);
    auto wp = working_weights(w, r0, per, d, f);
    std::vector<double> delta(static_cast<size_t>(per * d));
    sweep_group(wp.data(), per, d, f.lc, o.block, delta.data(),
                [&](int64_t r, int64_t j, double x) {
                  const int64_t c = r0 + r, col = f.perm[static_cast<size_t>(j)];
                  double value = 0, left = x;
                  for (int64_t p = first[static_cast<size_t>(c)];
                       p < first[static_cast<size_t>(c) + 1]; ++p) {
                    const double s = q.scales[static_cast<size_t>(p)];
                    const int k = s > 0 ? quantize_value(left, s, L) : 0;
                    q.codes[static_cast<size_t>(p * d + col)] = static_cast<int8_t>(k);
                    value += s * k;
                    left -= s * k;
                  }
                  return value;
                });
    auto e1 = output_errors(stats, g, deltas(r0));
    for (int64_t k = 0; k < per; ++k) {
      const int64_t c = r0 + k;
      const size_t i = static_cast<size_t>(k), ci = static_cast<size_t>(c);
      res.output_error_before[ci] = e0[i];
      res.output_error[ci] = e1[i];
      if (e1[i] > e0[i]) {  // the guard: this row keeps its codes
        const auto b = static_cast<size_t>(first[ci] * d),
                   n = static_cast<size_t>(q.points[ci] * d);
        std::copy(before.begin() + static_cast<std::ptrdiff_t>(b),
                  before.begin() + static_cast<std::ptrdiff_t>(b + n),
                  q.codes.begin() + static_cast<std::ptrdiff_t>(b));
        res.output_error[ci] = e0[i];
        ++res.rows_kept;
      }
    }
  }
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
      const auto t0 = std::chrono::steady_clock::now();
      res[k] = quantize_gptq_layer(l.w, l.c_out, l.d, l.groups, l.bits, l.granularity, *l.stats,
                                   options);
      res[k].seconds = seconds_since(t0);
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
