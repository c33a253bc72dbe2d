#include "mpq/quant/adaround.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "mpq/quant/gptq.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/rtn_guard.h"
#include "mpq/util/error.h"

namespace mpq::quant {

namespace {

constexpr float kZeta = 1.1f, kGamma = -0.1f;
constexpr float kAdamB1 = 0.9f, kAdamB2 = 0.999f, kAdamEps = 1e-8f;

struct Block {
  int64_t group, r0, rows;
};

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// β of iteration t (BRECQ/AdaRound's linear temperature decay after the warm-up).
float beta_at(const AdaroundOptions& o, int64_t t) {
  const double warm = o.warmup * static_cast<double>(o.iterations);
  const double rel = (static_cast<double>(t) - warm) / (static_cast<double>(o.iterations) - warm);
  return static_cast<float>(o.beta_end + (o.beta_start - o.beta_end) * std::max(0.0, 1.0 - rel));
}

// Optimizes the rounding of `rows` rows; writes their codes and returns the soft objective.
double run_block(const float* w, const double* steps, int64_t rows, int64_t d,
                 const torch::Tensor& sigma, int L, const AdaroundOptions& o, int8_t* codes,
                 int64_t* undecided) {
  const size_t n = static_cast<size_t>(rows * d);
  std::vector<float> fl(n), v(n), m1(n, 0.f), m2(n, 0.f), delta(n), grad(n, 0.f), sc(n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const size_t i = static_cast<size_t>(r * d + j);
      const float s = static_cast<float>(steps[r]);
      sc[i] = s;
      if (s <= 0) {  // an all-zero row: nothing to round
        fl[i] = 0;
        v[i] = -10;
        continue;
      }
      const float x = w[i] / s;
      fl[i] = std::floor(x);
      const float rest = std::min(std::max(x - fl[i], 0.0f), 1.0f);
      // h(V) = rest: σ(V) = (rest - γ) / (ζ - γ).
      v[i] = -std::log((kZeta - kGamma) / (rest - kGamma) - 1.0f);
    }
  auto dt = torch::from_blob(delta.data(), {rows, d}, torch::kFloat32);
  auto gt = torch::from_blob(grad.data(), {rows, d}, torch::kFloat32);
  const int64_t warm = static_cast<int64_t>(o.warmup * static_cast<double>(o.iterations));
  const float lambda = static_cast<float>(o.lambda), lr = static_cast<float>(o.lr);
  float b1t = 1.f, b2t = 1.f;
  auto forward = [&](bool hard) {
    for (size_t i = 0; i < n; ++i) {
      const float h = hard ? (v[i] >= 0 ? 1.f : 0.f)
                           : std::clamp(sigmoid(v[i]) * (kZeta - kGamma) + kGamma, 0.f, 1.f);
      const float q = std::clamp(fl[i] + h, static_cast<float>(-L), static_cast<float>(L));
      delta[i] = sc[i] * q - w[i];
    }
  };
  for (int64_t t = 0; t < o.iterations; ++t) {
    forward(false);
    torch::mm_out(gt, dt, sigma);  // ΔΣ; the reconstruction gradient is 2ΔΣ
    const bool reg = t >= warm;
    const float beta = beta_at(o, t);
    b1t *= kAdamB1;
    b2t *= kAdamB2;
    for (size_t i = 0; i < n; ++i) {
      const float sg = sigmoid(v[i]);
      const float hs = sg * (kZeta - kGamma) + kGamma;
      if (hs < 0.f || hs > 1.f) {  // h clipped: no gradient reaches V (Adam still steps)
        grad[i] = 0.f;
      } else {
        const float q = fl[i] + hs;
        float gh = (q >= -L && q <= L) ? 2.f * grad[i] * sc[i] : 0.f;
        if (reg) {
          const float u = 2.f * hs - 1.f;
          const float au = std::fabs(u);
          if (au > 0.f) gh += -lambda * beta * std::pow(au, beta - 1.f) * (u > 0 ? 2.f : -2.f);
        }
        grad[i] = gh * sg * (1.f - sg) * (kZeta - kGamma);
      }
      const float g = grad[i];
      m1[i] = kAdamB1 * m1[i] + (1.f - kAdamB1) * g;
      m2[i] = kAdamB2 * m2[i] + (1.f - kAdamB2) * g * g;
      const float mh = m1[i] / (1.f - b1t), vh = m2[i] / (1.f - b2t);
      v[i] -= lr * mh / (std::sqrt(vh) + kAdamEps);
    }
  }
  // Soft objective at the end, then the hard rounding.
  forward(false);
  torch::mm_out(gt, dt, sigma);
  double soft = 0;
  for (size_t i = 0; i < n; ++i) soft += static_cast<double>(grad[i]) * delta[i];
  for (size_t i = 0; i < n; ++i) {
    const float h = std::clamp(sigmoid(v[i]) * (kZeta - kGamma) + kGamma, 0.f, 1.f);
    *undecided += (h > 0.01f && h < 0.99f) ? 1 : 0;
    const float q = std::clamp(fl[i] + (v[i] >= 0 ? 1.f : 0.f), static_cast<float>(-L),
                               static_cast<float>(L));
    codes[i] = static_cast<int8_t>(q);
  }
  return soft;
}

}  // namespace

AdaroundResult adaround_layer(const float* w, int64_t c_out, int64_t d, int64_t groups, int bits,
                              Granularity granularity, const SecondMoment& stats,
                              const AdaroundOptions& o,
                              const std::function<void(int64_t)>& progress) {
  MPQ_ASSERT(c_out > 0 && d > 0 && groups >= 1 && c_out % groups == 0, "layer shape");
  MPQ_ASSERT(stats.d == d && stats.groups == groups, "statistics shape");
  MPQ_ASSERT(o.iterations >= 1 && o.warmup >= 0 && o.warmup < 1, "AdaRound options");
  const int L = max_level(bits);
  const int64_t per = c_out / groups;
  const auto steps = gptq_steps(w, c_out, d, bits, granularity, o.grid);

  AdaroundResult res;
  QuantizedLayer& q = res.q;
  q = single_point_layout(c_out, d, bits, steps);

  std::vector<torch::Tensor> sig;
  for (int64_t g = 0; g < groups; ++g)
    sig.push_back(stats.dense(g).to(torch::kFloat32).contiguous());
  std::vector<Block> blocks;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t r = 0; r < per; r += kAdaroundRows)
      blocks.push_back({g, g * per + r, std::min(kAdaroundRows, per - r)});
  std::vector<double> soft(blocks.size());
  std::vector<int64_t> undecided(blocks.size(), 0);
  std::vector<std::exception_ptr> errors(blocks.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& bl = blocks[b];
    try {
      soft[b] = run_block(w + bl.r0 * d, steps.data() + bl.r0, bl.rows, d,
                          sig[static_cast<size_t>(bl.group)], L, o, q.codes.data() + bl.r0 * d,
                          &undecided[b]);
    } catch (...) {
      errors[b] = std::current_exception();
    }
    if (progress) {
#pragma omp critical(mpq_adaround_progress)
      progress(o.iterations * bl.rows);
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  for (size_t b = 0; b < blocks.size(); ++b) {
    res.objective_soft += soft[b];
    res.undecided += undecided[b];
  }

  // Errors, the guard against round-to-nearest, and the rounding decisions against it.
  auto cmp = guard_against_rtn(w, stats, q);
  res.output_error = std::move(cmp.output_error);
  res.rtn_output_error = std::move(cmp.rtn_output_error);
  res.output_energy = std::move(cmp.output_energy);
  res.rows_kept_rtn = cmp.rows_kept_rtn;
  for (size_t i = 0; i < q.codes.size(); ++i) {
    res.rounded_up += q.codes[i] > cmp.rtn_codes[i];
    res.rounded_down += q.codes[i] < cmp.rtn_codes[i];
  }
  return res;
}

}  // namespace mpq::quant
