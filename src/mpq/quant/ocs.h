// Outlier channel splitting (Zhao, Hu, Dotzel, De Sa, Zhang, "Improving Neural Network
// Quantization without Retraining using Outlier Channel Splitting", ICML 2019).
//
// For a layer y = W x with W [C_out, C_in_g, k] (k = kh*kw; linear: k = 1), OCS repeatedly takes
// the input channel j holding the largest |w| of the layer, halves its weights and appends a copy
// of the halved column; the layer's input is extended with a duplicate of channel j (the
// producing layer duplicates that output channel, or the input is gathered), so W' x' = W x:
// the float network is unchanged. After ceil(expand_ratio * C_in_g) splits the layer is
// quantized (its range is now smaller), and a split channel contributes
// (Q(w_j/2) + Q(w_j/2)) x_j: the simulated layer is the quantized W' merged back onto C_in_g
// columns, which is exactly what the expanded network computes.
//
// Grouped convolutions with more than one group (depthwise in particular) cannot be split this
// way: an input channel of group g feeds only the outputs of g, and the duplicate would have to
// join a group, changing its size. mpq reports them as not applicable and quantizes them
// without splitting.
#pragma once

#include <cstdint>
#include <vector>

namespace mpq::quant {

struct OcsSplit {
  int64_t c_out = 0, c_in = 0, k = 1;  ///< original shape (c_in = input channels of the layer)
  std::vector<float> weight;           ///< split weight [c_out, c_in + splits, k]
  std::vector<int64_t> source;         ///< [splits] original input channel of each appended column
  int64_t splits() const { return static_cast<int64_t>(source.size()); }
};

/// Splits `splits` times. w: [c_out, c_in, k] row-major. Ties for the largest |w| go to the
/// lowest (channel, then position) so the result is deterministic.
OcsSplit ocs_split(const float* w, int64_t c_out, int64_t c_in, int64_t k, int64_t splits);

/// Number of splits for an expand ratio r in [0, 1]: ceil(r * c_in) (0 for r = 0).
int64_t ocs_split_count(double expand_ratio, int64_t c_in);

/// Merges a (quantized) split weight [c_out, c_in + splits, k] back to [c_out, c_in, k] by adding
/// every appended column onto its source column.
std::vector<float> ocs_merge(const OcsSplit& split, const std::vector<float>& split_weight);

}  // namespace mpq::quant
