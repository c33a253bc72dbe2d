// A quantized layer: every output channel c approximated by n_c >= 1 points (method.md §1),
//   w~_c = sum_{p : channel(p) = c} scales[p] * codes[p],  codes in {-L..L}^d,
// stored channel-major (a channel's points are consecutive, in the order they were added).
// Single-point methods (round-to-nearest, clipping baselines) are the case n_c = 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mpq/quant/multipoint.h"

namespace mpq::quant {

enum class Granularity {
  kPerChannel,  ///< each channel's first point has its own scale
  kPerLayer,    ///< the first point's scale is shared by the whole layer (per-tensor, §4)
};
const char* granularity_name(Granularity g);

struct QuantizedLayer {
  int bits = 0;
  int64_t c_out = 0, d = 0;
  int max_points = 1;                  ///< K: columns of the per-point error tables
  std::vector<int32_t> points;         ///< [c_out] n_c
  std::vector<int8_t> codes;           ///< [P, d]
  std::vector<float> scales;           ///< [P]
  std::vector<int32_t> point_channel;  ///< [P]
  std::vector<float> weight_error;     ///< [c_out, K] ||w_c - w~_c||^2 after k+1 points; NaN if not computed
  std::vector<float> output_error;     ///< [c_out, K] output error after k+1 points; empty without statistics
  std::vector<int32_t> grant_order;    ///< [c_out, K] global rank of each extra point's grant; -1 otherwise

  int64_t total_points() const { return static_cast<int64_t>(scales.size()); }
  /// Dequantized weights w~ [c_out, d] (row-major) into out.
  void dequantize(float* out) const;
};

/// Packs greedy channel states into a QuantizedLayer. `n_used[c]` points of channel c are kept
/// (all of them when n_used is empty). weight_error is filled for the kept points.
QuantizedLayer pack_channels(const std::vector<GreedyChannel>& channels, int bits, int max_points,
                             const std::vector<int>& n_used = {});

/// Round-to-nearest with range = max|w| (per channel, or one range for the whole layer).
/// @param w  weights [c_out, d] row-major
QuantizedLayer quantize_rtn_layer(const float* w, int64_t c_out, int64_t d, int bits,
                                  Granularity granularity);

/// Sum over channels of ||w_c - w~_c||^2 for the points kept in `q` (double precision).
double layer_weight_sq_error(const float* w, const QuantizedLayer& q);

}  // namespace mpq::quant
