// AdaRound: learned rounding of each weight up or down (Nagel, Amjad, van Baalen, Louizos,
// Blankevoort, "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020), with
// the objective computed from the layer's calibration statistics Σ (no data pass):
//
//   W~ = s · clip(floor(W / s) + h(V), -L, L),   h(V) = clip(σ(V)(ζ - γ) + γ, 0, 1),  ζ = 1.1, γ = -0.1
//   min_V  Σ_c (w~_c - w_c)ᵀ Σ_g (w~_c - w_c)  +  λ Σ_ij (1 - |2 h(V_ij) - 1|^β)
//
// which is the paper's layer-wise ||W x - W~ x||² (summed over output channels, averaged over the
// calibration rows; Σ is that average of x xᵀ) without activation quantization and with FP
// inputs. As in the paper: V starts where h(V) equals the fractional part of W / s (the
// neighbourhood of round-to-nearest, not random); Adam (lr 1e-3, β1 0.9, β2 0.999, ε 1e-8);
// the first 20% of iterations without the regularizer; then β decays linearly from 20 to 2;
// λ = 0.01; at the end h is rounded to {0, 1} (up where h >= 1/2). The step s is fixed
// beforehand (MSE-optimal or max range, per channel or one per layer).
//
// Rows (output channels) are independent under this objective: they are optimized in fixed
// blocks of kAdaroundRows rows, one block per OpenMP thread at a time, each with its own
// single-threaded GEMMs, so the result does not depend on the thread count. The random seed is
// not used by this objective (full-batch gradients, deterministic initialization); it is kept for
// the data-driven objective (not implemented, docs/method.md).
//
// Guard: a row whose rounded result has a larger output error than round-to-nearest on the same
// grid keeps round-to-nearest (counted in rows_kept_rtn), so a layer is never worse than RTN.
//
// Cost per iteration: rows · d² multiply-adds (one GEMM with Σ) + O(rows · d); memory per
// block: V, Adam's two moments and the gradient, kAdaroundRows x d float32 each, plus Σ.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "mpq/quant/layer.h"
#include "mpq/quant/output_error.h"

namespace mpq::quant {

constexpr int64_t kAdaroundRows = 32;

struct AdaroundOptions {
  int64_t iterations = 10000;
  double lambda = 0.01;  ///< regularizer weight
  double beta_start = 20, beta_end = 2;
  double warmup = 0.2;  ///< fraction of iterations without the regularizer
  double lr = 1e-3;     ///< Adam learning rate
  RangeMethod grid = RangeMethod::kMse;  ///< step of each row (or of the layer): kMse or kMax
};

struct AdaroundResult {
  QuantizedLayer q;                      ///< one point per channel
  std::vector<double> output_error;      ///< [c_out] δ_cᵀ Σ δ_c after rounding
  std::vector<double> rtn_output_error;  ///< [c_out] the same for round-to-nearest on the grid
  std::vector<double> output_energy;     ///< [c_out] w_cᵀ Σ w_c
  double objective_soft = 0;  ///< final reconstruction term with the soft h(V), summed over rows
  int64_t undecided = 0;      ///< weights with h(V) strictly inside (0.01, 0.99) at the end
  int64_t rows_kept_rtn = 0;  ///< rows where the guard kept round-to-nearest
  int64_t rounded_up = 0, rounded_down = 0;  ///< weights rounded against round-to-nearest
};

/// `progress` (optional) is called with the number of iterations done by a block, serialized.
AdaroundResult adaround_layer(const float* w, int64_t c_out, int64_t d, int64_t groups, int bits,
                              Granularity granularity, const SecondMoment& stats,
                              const AdaroundOptions& options,
                              const std::function<void(int64_t)>& progress = {});

}  // namespace mpq::quant
