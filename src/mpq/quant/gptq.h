// GPTQ: layer-wise quantization with second-order error feedback (Frantar, Ashkboos, Hoefler,
// Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
// ICLR 2023, Algorithm 1; OBQ: Frantar & Alistarh, NeurIPS 2022).
//
// Objective per output channel (row) w of a group with input second moment Σ (= H / 2):
//   min over codes k of (w - s k)^T Σ (w - s k),   s the row's step, fixed beforehand,
// solved greedily column by column; after column j is rounded, the later columns absorb its
// error through H^-1. As in the paper: dead inputs (H_jj = 0) get H_jj = 1 and their weights
// set to 0; H += λ I with λ = damp · mean(diag H); optional act-order (columns by descending
// diag H, stable for ties); the grid (max-range or MSE step, per channel or one per layer) is
// chosen from the original weights before the sweep. Grouped and depthwise convolutions use one
// H per group (SecondMoment keeps Σ per group).
//
// Formulation. The paper propagates errors with U, the upper Cholesky factor of H^-1
// (e_j = (w_j - q_j) / U_jj; w_{>j} -= e_j U_{j,>j}). With M the lower-triangular factor of
// H = MᵀM (the Cholesky factor of H with rows and columns reversed), the same rounding decisions
// read q_j = round(w_j + Σ_{i<j} M_ji δ_i / M_jj), δ_i = w_i - q_i (Babai's nearest plane in the
// order 1..d; equal to the paper's updates in exact arithmetic, checked against an independent
// implementation of Algorithm 1 in tests/integration/gptq_reference.py). It needs one Cholesky
// factorization (d³/3) instead of an inverse and two factorizations, and the corrections of
// earlier blocks of `block` columns come from one GEMM per block. Everything is float64.
//
// Guard: GPTQ is greedy, and on short rows (a depthwise 3x3 kernel has d = 9) its rounding can
// end with a larger output error than plain round-to-nearest on the same grid (seen on an
// unfolded MobileNetV2's first depthwise conv under AVX2 kernels). Such a row keeps
// round-to-nearest (counted in rows_kept_rtn), so no row, and no layer, is worse than RTN.
//
// Cost per group: d³/3 (factorization) + rows·d² (corrections) multiply-adds. Memory per layer
// being processed: at most three d x d float64 matrices at once (H, its reordered copy and the
// factor; 510 MB at d = 4608) plus rows x d float64 for the weights and their errors.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "mpq/quant/layer.h"
#include "mpq/quant/output_error.h"

namespace mpq::quant {

struct GptqOptions {
  double damp = 0.01;      ///< λ = damp · mean(diag H)
  bool act_order = false;  ///< columns by descending diag H
  int64_t block = 128;     ///< columns per block (only changes float64 summation order)
  RangeMethod grid = RangeMethod::kMax;  ///< step of each row (or of the layer): kMax or kMse
};

struct GptqResult {
  QuantizedLayer q;                  ///< one point per channel
  std::vector<double> output_error;  ///< [c_out] δ_cᵀ Σ δ_c (undamped Σ), δ_c = w_c - w~_c
  std::vector<double> rtn_output_error;  ///< [c_out] the same for round-to-nearest on the grid
  std::vector<double> output_energy;     ///< [c_out] w_cᵀ Σ w_c
  int64_t dead_columns = 0;              ///< inputs with H_jj = 0, summed over groups
  int64_t rows_kept_rtn = 0;             ///< rows where the guard kept round-to-nearest
  double seconds = 0;  ///< wall time of quantize_gptq_layers on this layer (its thread)
};

/// Quantizes a layer [c_out, d] (row-major; rows of group g = c / (c_out / groups) share Σ_g).
/// Throws InputError if H + λI is not positive definite (possible only with damp = 0).
GptqResult quantize_gptq_layer(const float* w, int64_t c_out, int64_t d, int64_t groups, int bits,
                               Granularity granularity, const SecondMoment& stats,
                               const GptqOptions& options);

/// One layer of quantize_gptq_layers.
struct GptqLayer {
  const float* w = nullptr;  ///< [c_out, d]
  int64_t c_out = 0, d = 0, groups = 1;
  int bits = 4;
  Granularity granularity = Granularity::kPerChannel;
  const SecondMoment* stats = nullptr;
};

/// quantize_gptq_layer for every layer, layers on the OpenMP threads (largest first), each
/// single-threaded inside: every result is the same whatever the thread count. `done` (optional)
/// is called once per finished layer, serialized. The first failing layer's exception (in layer
/// order) is rethrown after all layers ran.
std::vector<GptqResult> quantize_gptq_layers(const std::vector<GptqLayer>& layers,
                                             const GptqOptions& options,
                                             const std::function<void()>& done = {});

/// GPTQ's error feedback over a multipoint layer (weights.multipoint.gptq_feedback): multipoint
/// on GPTQ builds its extra points greedily on what GPTQ's first point leaves, so the error GPTQ
/// fed forward was the first point's, not the smaller one left after all of a channel's points.
/// This re-runs GPTQ's column sweep on q (after allocation: the points per channel and every step
/// stay) with each weight plus the feedback of the earlier columns rounded by the channel's points
/// in order (the first point rounds it, each extra point rounds what is left, as the greedy
/// construction does); the error left after all of them is what the later columns absorb. Same
/// damping, column order and dead inputs as quantize_gptq_layer. Guard: a row whose δᵀΣδ (undamped
/// Σ) grows keeps its codes. q must be one precision without split channels.
struct GptqFeedback {
  std::vector<double> output_error_before;  ///< [c_out] δ_cᵀ Σ δ_c of q as given
  std::vector<double> output_error;         ///< [c_out] the same after the feedback and guard
  int64_t rows_kept = 0;                    ///< rows the guard gave their codes back
};
GptqFeedback gptq_feedback(const float* w, const SecondMoment& stats, const GptqOptions& options,
                           QuantizedLayer& q);

/// The steps GPTQ uses: one per row (per channel) or the same for every row (per layer), from
/// the original weights with options.grid.
std::vector<double> gptq_steps(const float* w, int64_t c_out, int64_t d, int bits,
                               Granularity granularity, RangeMethod grid);

}  // namespace mpq::quant
