// A quantized layer: every output channel c approximated by n_c >= 1 points (method.md §1),
//   w~_c = sum_{p : channel(p) = c} scales[p] * codes[p],  codes in {-L..L}^d,
// stored channel-major (a channel's points are consecutive, in the order they were added).
// Single-point methods (round-to-nearest, clipping baselines) are the case n_c = 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mpq/quant/multipoint.h"
#include "mpq/quant/ranges.h"

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
  std::vector<float>
      weight_error;  ///< [c_out, K] ||w_c - w~_c||^2 after k+1 points; NaN if not computed
  std::vector<float>
      output_error;  ///< [c_out, K] output error after k+1 points; empty without statistics
  std::vector<int32_t>
      grant_order;  ///< [c_out, K] global rank of each extra point's grant; -1 otherwise
  /// Physical mixed precision (bit allocation): bits of each channel, [c_out]; empty = all `bits`.
  std::vector<int8_t> channel_bits;
  /// Outlier channel splitting: the codes have d = (c_in_g + splits) * ocs_k columns; appended
  /// column j (0-based) duplicates original input channel ocs_source[j]. Empty = no splitting.
  std::vector<int64_t> ocs_source;
  int64_t ocs_k = 1;  ///< kernel positions per input channel (kh * kw)

  int64_t total_points() const { return static_cast<int64_t>(scales.size()); }
  /// Dequantized weights w~ [c_out, d] (row-major) into out, in the stored (split) layout.
  void dequantize(float* out) const;
  /// The weights the layer effectively applies, [c_out, d_orig] (split columns merged back).
  std::vector<float> effective_weights() const;
  /// Weight length of the original layer (d minus the split columns).
  int64_t original_d() const { return d - static_cast<int64_t>(ocs_source.size()) * ocs_k; }
  /// Bits of all stored codes: sum over points of d * (that channel's bits).
  double code_bits() const;
};

/// Extra MACs per image of a quantized layer over the original (layer_macs: the original's):
/// extra points (multipoint) and split input channels (OCS).
double extra_macs(const QuantizedLayer& q, double layer_macs);

/// Packs greedy channel states into a QuantizedLayer. `n_used[c]` points of channel c are kept
/// (all of them when n_used is empty). weight_error is filled for the kept points.
QuantizedLayer pack_channels(const std::vector<GreedyChannel>& channels, int bits, int max_points,
                             const std::vector<int>& n_used = {});

/// How a single point's range (clipping value α, step = α / L) is chosen (ranges.h).
enum class RangeMethod { kMax, kMse, kAciqLaplace, kAciqGaussian, kPercentile };
struct RangeSpec {
  RangeMethod method = RangeMethod::kMax;
  double percentile = 99.99;  ///< for kPercentile, in [0, 100]
};

/// Step of a single point for values x[0..n) on the symmetric grid with L levels.
double range_step(const float* x, int64_t n, int L, const RangeSpec& range);

/// One point per channel with the given range method (per channel, or one range for the whole
/// layer). w: weights [c_out, d] row-major.
QuantizedLayer quantize_single_point_layer(const float* w, int64_t c_out, int64_t d, int bits,
                                           Granularity granularity, const RangeSpec& range);

/// Round-to-nearest with range = max|w| (quantize_single_point_layer with kMax).
QuantizedLayer quantize_rtn_layer(const float* w, int64_t c_out, int64_t d, int bits,
                                  Granularity granularity);

/// Sum over channels of ||w_c - w~_c||^2 of the effective weights (double precision).
/// @param w  original weights [c_out, original_d()]
double layer_weight_sq_error(const float* w, const QuantizedLayer& q);

}  // namespace mpq::quant
