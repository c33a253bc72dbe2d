// Greedy multipoint approximation of one weight vector (method.md §1-2).
//
//   w ≈ sum_{i=1..n} step_i * k_i,  k_i ∈ {-L..L}^d,  L = 2^(bits-1) - 1
//
// built greedily: r_0 = w, (step_i, k_i) = argmin ||r_{i-1} - step * k||^2 (optionally weighted by
// an importance vector s, method.md §2 "beyond the paper"), r_i = r_{i-1} - step_i * k_i.
// Each step is rounded to float32 before the residual is updated, so the stored representation
// (float32 steps, int8 codes) reproduces the recorded errors exactly.
//
// Memory: a channel keeps a pointer to w (float32, owned by the caller) and its points (a float
// step and d int8 codes each); the float64 residual r_n = w - sum_i step_i k_i is recomputed
// when needed, in the same order of operations as an incremental update, so it is bit-identical
// to one. A layer's greedy state is thus n bytes per weight (n points), not 16 + n: VGG-16's
// 25088-wide FC with 4 points holds 0.4 GB instead of 2 GB (docs/benchmarks.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mpq::quant {

enum class StepSearch {
  kExact,  ///< global optimum by breakpoint sweep (coefficient_search.h)
  kGrid,   ///< best of a finite candidate grid (paper-style, for ablation)
};

struct PointSearch {
  int bits = 4;  ///< grid bits b in [2, 8]
  StepSearch search = StepSearch::kExact;
  int grid_candidates = 1024;  ///< used by kGrid
};

/// One channel's greedy state: its points so far and the residual they leave.
class GreedyChannel {
 public:
  /// @param w  weight vector, size d; not copied: it must outlive the channel and not change
  GreedyChannel(const float* w, int64_t d);

  /// Adds the optimal next point for the current residual (see PointSearch).
  /// @param importance  optional weights s_j >= 0, size d, for the weighted objective
  void add_point(const PointSearch& ps, const double* importance = nullptr);

  /// Adds a point with a prescribed step (round-to-nearest of the residual onto step * grid):
  /// the per-layer first point, or max-range RTN.
  void add_fixed_point(double step, int bits);
  /// Adds a point computed elsewhere (e.g. GPTQ's codes and step for the channel's first point).
  void add_given_point(float step, const int8_t* codes);

  /// Replaces all steps by the least-squares optimum for the current codes under the metric
  /// M (identity when metric == nullptr, diagonal when `diagonal`, else dense d x d row-major):
  /// min_steps (w - sum step_i k_i)^T M (w - sum step_i k_i). Points whose codes are all zero or
  /// linearly dependent keep step 0. The refit is kept only if it does not increase the error
  /// under M, so it can never make a channel worse. With `keep_first`, the first point's step
  /// stays as it is (per-layer granularity shares it across the layer) and only the others move.
  void refit_steps(const double* metric, bool diagonal, bool keep_first = false);

  /// Drops every point after the first n (n <= n_points()).
  void truncate(int n);

  int64_t d() const { return d_; }
  int n_points() const { return static_cast<int>(steps_.size()); }
  float step(int i) const { return steps_[static_cast<size_t>(i)]; }
  const int8_t* codes(int i) const { return codes_.data() + static_cast<size_t>(i) * d_; }
  /// Writes the residual r = w - sum_i step_i * k_i (float64) into out (size d).
  void residual(double* out) const;
  /// The same residual rounded to float32 (what the output-error GEMMs take).
  void residual(float* out) const;
  /// ||r||^2 = ||w - w~||^2 after the current points.
  double residual_sq_norm() const;
  /// ||w||^2.
  double weight_sq_norm() const { return w_sq_norm_; }
  /// Writes w~ = sum_i step_i * k_i (float) into out (size d).
  void reconstruct(float* out) const;

 private:
  int64_t d_;
  const float* w_;
  double w_sq_norm_ = 0.0;
  std::vector<float> steps_;
  std::vector<int8_t> codes_;  // n_points x d
};

}  // namespace mpq::quant
