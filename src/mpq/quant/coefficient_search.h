// Optimal single point on the symmetric grid: min over step t > 0 of
//     f(t) = sum_j s_j (r_j - t * k_j(t))^2,   k_j(t) = clamp(round(r_j / t), -L, L)
// (s_j = 1 unless an importance vector is given; method.md §2).
//
// exact_step_search — the global optimum (ours; method.md §2 "Exact search"). k_j(t) changes
// only at the breakpoints t = |r_j| / (k - 1/2), k = 1..L. Between consecutive breakpoints the
// codes are fixed and f(t) = R - 2 t S1 + t^2 S2 with R = sum s_j r_j^2, S1 = sum s_j |r_j| k_j,
// S2 = sum s_j k_j^2, whose minimizer is t* = S1 / S2 clamped to the piece. Sweeping the
// breakpoints in decreasing order updates S1 += s_j |r_j| and S2 += s_j (2k - 1) per crossing,
// so every piece is visited once. The breakpoints come out in order from a calendar queue over
// 1/t (buckets holding ~2 breakpoints, counting-sorted a block at a time, insertion-sorted within
// a bucket): O(d + B) time for B breakpoints visited, O(d) memory, no sort of the magnitudes
// (an earlier version merged L sorted lists with a heap: O(d log d + B log L), 2-3x slower). The
// sweep stops early once a lower bound on f
// for all smaller t (the error of the elements already saturated at ±L) exceeds the best piece;
// for Gaussian weights at 4 bits this skips most breakpoints, which lie below the optimum. Because
// the piece formula cancels badly when R dwarfs the optimum (1e30 next to 1), the few best pieces
// are re-evaluated exactly from their codes; the result is optimal to within ~1e-12 * R, and exact
// on the tested extreme vectors.
//
// grid_step_search — the paper-style search over a finite candidate set (for ablations):
// t_i = (max|r| / L) * i / n_candidates, i = 1..n_candidates (clipping ratios in (0, 1]).
#pragma once

#include <cstdint>

namespace mpq::quant {

struct StepFit {
  double step = 0.0;   ///< optimal t (0 when r is zero everywhere s > 0: no point helps)
  double error = 0.0;  ///< f(step), recomputed from the returned codes in double precision
};

/// Global optimum of f over t > 0.
/// @param r           residual vector, size d
/// @param d           length (any d >= 0)
/// @param L           max_level(bits), in [1, 127]; up to 255 without codes (unsigned
///                    activation grids of 8 bits)
/// @param importance  optional per-element weights s_j >= 0, size d (nullptr = all ones)
/// @param codes       optional output, size d: codes at the optimum (all zero if step == 0)
StepFit exact_step_search(const double* r, int64_t d, int L, const double* importance,
                          int8_t* codes);

/// Best of n_candidates grid steps (see header comment). Same arguments as exact_step_search.
StepFit grid_step_search(const double* r, int64_t d, int L, int n_candidates,
                         const double* importance, int8_t* codes);

/// f(t) for a given t, writing the codes (reference for tests and for fixed-step points).
double weighted_rtn_error(const double* r, int64_t d, double step, int L, const double* importance,
                          int8_t* codes);

}  // namespace mpq::quant
