// Output error of a quantized channel from calibration statistics (method.md §3):
//
//   e_c = E[(w_c^T x - w~_c^T x)^2] = δ_c^T Σ δ_c,   δ_c = w_c - w~_c,   Σ = E[x x^T]
//
// where x ranges over the layer's input vectors: every im2col patch of a conv input (restricted
// to the channel's group for grouped/depthwise convs) or every row of a linear input.
//
// Σ is d x d per group. To bound memory for large d (VGG's first FC has d = 25088: 2.5 GB in
// float32), SecondMoment either holds Σ itself or, when G * d^2 floats would exceed the budget,
// a uniform random sample of m input rows X (m x d) with Σ ≈ X^T X / m (then e_c = ||X δ||^2 / m),
// m chosen so G * m * d floats fit the same budget. docs/method.md states the bound.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <vector>

namespace mpq::quant {

struct SecondMoment {
  int64_t groups = 1;
  int64_t d = 0;
  bool sampled_rows = false;  ///< false: data = Σ [G, d, d]; true: data = X [G, m, d]
  torch::Tensor data;         ///< float32, contiguous
  int64_t rows_seen = 0;      ///< input vectors that went into the statistics (per group)

  /// diag(Σ) per group, [G, d] float64.
  torch::Tensor diagonal() const;
  /// Σ of group g as a dense [d, d] float64 tensor (formed from the rows if sampled).
  torch::Tensor dense(int64_t g) const;
  int64_t bytes() const { return data.defined() ? data.numel() * 4 : 0; }
};

/// δ^T Σ_g δ for each row of `deltas` [n, d] (float32) of group g; returns [n] as doubles.
std::vector<double> output_errors(const SecondMoment& s, int64_t g, const torch::Tensor& deltas);

}  // namespace mpq::quant
