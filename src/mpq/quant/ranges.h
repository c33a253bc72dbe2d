// Single-point range (clipping) methods for the symmetric grid, per channel or per layer
// (method.md §6). Each returns the clipping value α; the step is α / L.
//
//   max         α = max|x| (round-to-nearest, grid.h)
//   mse         α minimizing the squared error exactly (coefficient_search.h)
//   aciq        analytic clipping (Banner, Nahshan, Soudry, "Post training 4-bit quantization of
//               convolutional networks for rapid deployment", NeurIPS 2019, §3): fit a Laplace
//               (b = mean|x|) or Gaussian (σ = sqrt(mean x^2)) prior centred at 0 and minimize the
//               expected error of clipping at α plus rounding on a grid of step α/L:
//                 Laplace:  E(α) = 2 b^2 exp(-α/b)                                        + Δ^2/12
//                 Gaussian: E(α) = (α^2+σ^2) erfc(α/(σ√2)) - α σ √(2/π) exp(-α^2/(2σ^2)) + Δ^2/12
//               with the grid step Δ = α/L (the paper's α^2/(3·4^M) is Δ^2/12 for its 2^M bins of
//               width 2α/2^M). The minimizer is found numerically (golden section on E), not taken
//               from the paper's tables, because those assume 2^M bins while our symmetric grid
//               has 2L+1 levels.
//               For one-sided data (unsigned activations after ReLU) only the upper tail is
//               clipped: the clip term is halved and the grid step is α / L with L = 2^b - 1.
//   percentile  α = the p-th percentile of |x| (linear interpolation between order statistics)
#pragma once

#include <cstdint>

namespace mpq::quant {

enum class Prior { kLaplace, kGaussian };

/// Expected error of clipping at α (see header) for a prior with scale `scale` (b or σ) and a
/// grid of L positive levels; `one_sided` for non-negative data.
double aciq_expected_error(Prior prior, double scale, double alpha, int L, bool one_sided);

/// α minimizing aciq_expected_error over (0, 20 * scale]; 0 if scale is 0.
double aciq_alpha(Prior prior, double scale, int L, bool one_sided);

/// The prior's scale fitted to data: Laplace b = mean|x|, Gaussian σ = sqrt(mean x^2).
double fit_prior_scale(Prior prior, const float* x, int64_t n);

/// p-th percentile (p in [0, 100]) of |x|: with v the sorted magnitudes, position
/// (p/100) * (n-1) interpolated linearly. 0 for n = 0.
double abs_percentile(const float* x, int64_t n, double p);

}  // namespace mpq::quant
