#include "mpq/quant/adaround.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <numeric>
#include <random>

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

const char* adaround_objective_name(AdaroundObjective o) {
  return o == AdaroundObjective::kData ? "data" : "statistics";
}

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

// ---- The data objective (asymmetric reconstruction) ----------------------------------------

torch::Tensor OutputActivation::apply(const torch::Tensor& y) const {
  switch (kind) {
    case Kind::kRelu:
      return torch::relu(y);
    case Kind::kClip:
      return torch::clamp(y, 0.0, max);
    case Kind::kNone:
      break;
  }
  return y;
}

std::string OutputActivation::name() const {
  switch (kind) {
    case Kind::kRelu:
      return "relu";
    case Kind::kClip: {
      char b[64];
      std::snprintf(b, sizeof b, "clip(0, %g)", max);
      return b;
    }
    case Kind::kNone:
      break;
  }
  return "none";
}

torch::Tensor LayerOp::forward(const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& bias) const {
  if (!conv) return torch::linear(x, w, bias);
  return torch::conv2d(x, w, bias, stride, padding, dilation, groups);
}

namespace {

// Inputs per chunk when a whole calibration set goes through the layer without gradients.
constexpr int64_t kDataChunk = 64;

// The output channel's dimension of the layer's output (conv: 1; linear: the last).
int64_t channel_dim(const LayerOp& op, const torch::Tensor& y) {
  return op.conv ? 1 : y.dim() - 1;
}

// f_a(W x) of every input, in chunks, without gradients.
torch::Tensor layer_target(const LayerOp& op, const torch::Tensor& x, const torch::Tensor& w,
                           const torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += kDataChunk)
    parts.push_back(op.activation.apply(
        op.forward(x.narrow(0, i, std::min(kDataChunk, x.size(0) - i)), w, bias)));
  return torch::cat(parts);
}

// Per output channel: Σ over the output rows of all inputs of (f_a(W~ x~) - target)² (or of
// target² with `energy`), float64 sums of float32 chunks. *rows receives the row count.
std::vector<double> channel_errors(const LayerOp& op, const torch::Tensor& x,
                                   const torch::Tensor& wq, const torch::Tensor& bias,
                                   const torch::Tensor& target, bool energy, int64_t* rows) {
  torch::NoGradGuard no_grad;
  const int64_t c_out = wq.size(0);
  torch::Tensor acc = torch::zeros({c_out}, torch::kFloat64);
  *rows = 0;
  for (int64_t i = 0; i < x.size(0); i += kDataChunk) {
    const int64_t n = std::min(kDataChunk, x.size(0) - i);
    auto t = target.narrow(0, i, n);
    auto e = energy ? t.pow(2)
                    : (op.activation.apply(op.forward(x.narrow(0, i, n), wq, bias)) - t).pow(2);
    e = e.transpose(0, channel_dim(op, e)).reshape({c_out, -1});
    *rows += e.size(1);
    acc += e.sum(1, false, torch::kFloat64);
  }
  auto a = acc.contiguous();
  return std::vector<double>(a.data_ptr<double>(), a.data_ptr<double>() + c_out);
}

}  // namespace

AdaroundResult adaround_layer_data(const torch::Tensor& w, const torch::Tensor& bias,
                                   const LayerOp& op, const LayerInputs& inputs, int bits,
                                   Granularity granularity, const SecondMoment& stats,
                                   const AdaroundOptions& o,
                                   const std::function<void(int64_t)>& progress) {
  MPQ_ASSERT(o.iterations >= 1 && o.warmup >= 0 && o.warmup < 1 && o.batch_size >= 1,
             "AdaRound options");
  MPQ_ASSERT(inputs.fp.defined() && inputs.quantized.defined() &&
                 inputs.fp.sizes() == inputs.quantized.sizes() && inputs.fp.size(0) >= 1,
             "AdaRound inputs");
  const int64_t c_out = w.size(0), d = w.numel() / c_out, n = inputs.fp.size(0);
  const int L = max_level(bits);
  const torch::Tensor w2 = w.reshape({c_out, d}).to(torch::kFloat32).contiguous();
  const float* wp = w2.data_ptr<float>();
  const auto steps = gptq_steps(wp, c_out, d, bits, granularity, o.grid);

  AdaroundResult res;
  QuantizedLayer& q = res.q;
  q = single_point_layout(c_out, d, bits, steps);

  // Steps, floor(W / s) and V0 with h(V0) = frac(W / s); an all-zero row (step 0) stays 0.
  auto s = torch::tensor(std::vector<double>(steps), torch::kFloat64)
               .to(torch::kFloat32)
               .view({c_out, 1});
  auto live = s > 0;
  auto x = w2 / torch::where(live, s, torch::ones_like(s));
  auto fl = torch::where(live, torch::floor(x), torch::zeros_like(x));
  auto rest = torch::clamp(x - fl, 0.0, 1.0);
  auto v0 = -torch::log((kZeta - kGamma) / (rest - kGamma) - 1.0f);
  torch::Tensor V = torch::where(live, v0, torch::full_like(v0, -10.0f)).detach().clone();
  V.set_requires_grad(true);

  const torch::Tensor target = layer_target(op, inputs.fp, w, bias);
  auto weight_of = [&](const torch::Tensor& h) {
    return (s * torch::clamp(fl + h, static_cast<double>(-L), static_cast<double>(L)))
        .view(w.sizes());
  };
  auto h_of = [&](const torch::Tensor& v) {
    return torch::clamp(torch::sigmoid(v) * (kZeta - kGamma) + kGamma, 0.0, 1.0);
  };

  torch::optim::Adam adam(std::vector<torch::Tensor>{V},
                          torch::optim::AdamOptions(o.lr).betas({kAdamB1, kAdamB2}).eps(kAdamEps));
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t batch = std::min(o.batch_size, n);
  const int64_t warm = static_cast<int64_t>(o.warmup * static_cast<double>(o.iterations));
  int64_t reported = 0;  // iterations told to `progress`
  for (int64_t t = 0; t < o.iterations; ++t) {
    torch::Tensor xb = inputs.quantized, tb = target;
    if (batch < n) {  // partial Fisher-Yates: `batch` distinct inputs
      for (int64_t k = 0; k < batch; ++k) {
        std::uniform_int_distribution<int64_t> pick(k, n - 1);
        std::swap(order[static_cast<size_t>(k)], order[static_cast<size_t>(pick(rng))]);
      }
      auto idx = torch::from_blob(order.data(), {batch}, torch::kInt64);
      xb = inputs.quantized.index_select(0, idx);
      tb = target.index_select(0, idx);
    }
    auto h = h_of(V);
    auto y = op.activation.apply(op.forward(xb, weight_of(h), bias));
    auto loss = (y - tb).pow(2).sum() / static_cast<double>(y.numel() / c_out);
    if (t >= warm) loss = loss + o.lambda * (1 - (2 * h - 1).abs().pow(beta_at(o, t))).sum();
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (progress && ((t + 1) % 50 == 0 || t + 1 == o.iterations)) {
      progress(c_out * (t + 1 - reported));
      reported = t + 1;
    }
  }

  // The soft objective on every input, the hard rounding, and the guard per row.
  torch::NoGradGuard no_grad;
  int64_t rows = 0;
  const auto hs = h_of(V);
  for (double e : channel_errors(op, inputs.quantized, weight_of(hs), bias, target, false, &rows))
    res.objective_soft += e;
  res.objective_soft /= static_cast<double>(rows);
  res.undecided = ((hs > 0.01) & (hs < 0.99)).sum().item<int64_t>();
  auto codes = torch::clamp(fl + (V >= 0).to(torch::kFloat32), static_cast<double>(-L),
                            static_cast<double>(L))
                   .to(torch::kInt8)
                   .contiguous();
  std::copy(codes.data_ptr<int8_t>(), codes.data_ptr<int8_t>() + c_out * d, q.codes.begin());
  std::vector<int8_t> rtn(static_cast<size_t>(c_out * d));
  for (int64_t c = 0; c < c_out; ++c)
    quantize_rtn(wp + c * d, d, q.scales[static_cast<size_t>(c)], L, rtn.data() + c * d);
  auto dequant = [&](std::vector<int8_t>& cd) {
    return (s * torch::from_blob(cd.data(), {c_out, d}, torch::kInt8).to(torch::kFloat32))
        .view(w.sizes());
  };
  const auto e_q =
      channel_errors(op, inputs.quantized, dequant(q.codes), bias, target, false, &rows);
  const auto e_r = channel_errors(op, inputs.quantized, dequant(rtn), bias, target, false, &rows);
  const auto e_0 = channel_errors(op, inputs.quantized, w, bias, target, true, &rows);
  for (int64_t c = 0; c < c_out; ++c) {
    const size_t k = static_cast<size_t>(c);
    double e = e_q[k];
    if (e_q[k] > e_r[k]) {
      std::copy(rtn.begin() + c * d, rtn.begin() + (c + 1) * d, q.codes.begin() + c * d);
      e = e_r[k];
      res.rows_kept_rtn++;
    }
    res.data_error += e / static_cast<double>(rows);
    res.data_rtn_error += e_r[k] / static_cast<double>(rows);
    res.data_energy += e_0[k] / static_cast<double>(rows);
  }

  // The statistics' view, for comparison with the other methods (no guard), and the decisions.
  auto cmp = guard_against_rtn(wp, stats, q, false);
  res.output_error = std::move(cmp.output_error);
  res.rtn_output_error = std::move(cmp.rtn_output_error);
  res.output_energy = std::move(cmp.output_energy);
  for (size_t i = 0; i < q.codes.size(); ++i) {
    res.rounded_up += q.codes[i] > cmp.rtn_codes[i];
    res.rounded_down += q.codes[i] < cmp.rtn_codes[i];
  }
  return res;
}

}  // namespace mpq::quant
