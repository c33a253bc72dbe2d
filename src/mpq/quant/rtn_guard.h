// What GPTQ and AdaRound (gptq.h, adaround.h) share around their own rounding: the one-point
// layer they fill, and the comparison with round-to-nearest on the same steps under the layer's
// statistics, with the guard that gives a row round-to-nearest's codes when those are better.
#pragma once

#include <cstdint>
#include <vector>

#include "mpq/quant/layer.h"
#include "mpq/quant/output_error.h"

namespace mpq::quant {

/// A layer of one point per channel with step steps[c] (stored as float32) and all-zero codes.
QuantizedLayer single_point_layout(int64_t c_out, int64_t d, int bits,
                                   const std::vector<double>& steps);

struct RtnComparison {
  std::vector<int8_t> rtn_codes;         ///< [c_out, d] round-to-nearest on q's steps
  std::vector<double> output_error;      ///< [c_out] δ_cᵀ Σ δ_c of the final codes
  std::vector<double> rtn_output_error;  ///< [c_out] the same for round-to-nearest
  std::vector<double> output_energy;     ///< [c_out] w_cᵀ Σ w_c
  int64_t rows_kept_rtn = 0;             ///< rows whose codes were replaced by RTN's
};

/// Output errors of q's codes and of round-to-nearest on q's steps (the harness's float32 GEMMs
/// with float64 row sums, output_error.h); every row worse than round-to-nearest gets its codes.
/// Fills q.weight_error with ||w_c - w~_c||² of the final codes. w: [c_out, d], group of row c =
/// c / (c_out / stats.groups). With `guard` false nothing is replaced (the comparison only).
RtnComparison guard_against_rtn(const float* w, const SecondMoment& stats, QuantizedLayer& q,
                                bool guard = true);

}  // namespace mpq::quant
