// Layer-level baselines of the same harness (method.md §6): single-point range methods (max,
// ACIQ, percentile), outlier channel splitting, and per-channel bit allocation. Multipoint and
// the MSE-optimal point live in quantize.cpp; every method returns a LayerOutcome.
#pragma once

#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"

namespace mpq::ptq {

/// One point per channel with the config's range method (rtn, aciq, percentile).
LayerOutcome quantize_single_point(const model::Network& net, const model::LayerInfo& L, int bits,
                                   const WeightConfig& w);

/// OCS: split ceil(expand_ratio * C_in_g) input channels, quantize the split weight with the
/// configured range (max or mse), record the split sources. Layers with groups > 1 are quantized
/// without splitting and marked "not applicable" in their attributes.
LayerOutcome quantize_ocs(const model::Network& net, const model::LayerInfo& L, int bits,
                          const WeightConfig& w);

/// Per-channel bit allocation at the configured average bits (0 = the layer's bits), ranked by
/// output error with statistics, else by weight error.
LayerOutcome quantize_bit_alloc(const model::Network& net, const model::LayerInfo& L, int bits,
                                const WeightConfig& w, const quant::SecondMoment* stats);

/// Per-layer mixed precision: every layer of `layers` (base bits `base_bits`, statistics `stats`,
/// same order) quantized with the MSE-optimal range (quant/ranges.h) at every width from its base
/// to weights.layer_bits.max_bits (kept there if the base is wider), its output error
/// sum_c δ_cᵀ Σ δ_c at each, and the widths allocated over all of them under
/// weights.layer_bits.budget (quant::allocate_layer_bits, cost unit MACs at weights.bits).
/// Layer attrs: "bits" (chosen), "base_bits", "output_error_by_bits"; `summary` receives
/// "layer_bits_spent_pct" (of the MACs, at the base precision), "layer_bits_histogram".
std::vector<LayerOutcome> quantize_layer_bits(
    const model::Network& net, const std::vector<int>& layers, const std::vector<int>& base_bits,
    const WeightConfig& w, const std::vector<quant::SecondMoment>& stats, nlohmann::json* summary);

}  // namespace mpq::ptq
