// The symmetric b-bit grid shared by every weight quantizer in mpq (method.md §1).
//
// A b-bit code is an integer k in {-L, ..., L} with L = 2^(b-1) - 1 (2^b - 1 levels, zero
// included; the most negative two's-complement value is never used, so the grid is symmetric).
// A quantized value is step * k with step > 0 a real scale. In the paper's notation a point is
// a * u with u = k / L, so a = step * L.
//
// Rounding is round-half-away-from-zero (std::round) followed by saturation to [-L, L].
#pragma once

#include <cstdint>

namespace mpq::quant {

constexpr int kMinBits = 2;
constexpr int kMaxBits = 8;

/// Largest integer level L = 2^(bits-1) - 1 of the symmetric grid. bits must be in [2, 8].
int max_level(int bits);

/// Code of one value: clamp(round(x / step), -L, L); 0 when step <= 0. (int: activation grids
/// may have L up to 255; weight codes, L <= 127, are stored as int8.)
int quantize_value(double x, double step, int L);

/// Round-to-nearest of a vector onto a given step.
/// @param x      input, size d
/// @param step   grid step (> 0; step <= 0 yields all-zero codes)
/// @param L      max_level(bits)
/// @param codes  output, size d, in [-L, L]
/// @return       squared error sum_j (x_j - step * codes_j)^2, accumulated in double
double quantize_rtn(const float* x, int64_t d, double step, int L, int8_t* codes);
double quantize_rtn(const double* x, int64_t d, double step, int L, int8_t* codes);

/// max_j |x_j| (0 for d == 0).
double max_abs(const float* x, int64_t d);

/// Step of max-range round-to-nearest: max|x| / L (the largest magnitude lands exactly on L).
double max_range_step(const float* x, int64_t d, int L);

}  // namespace mpq::quant
