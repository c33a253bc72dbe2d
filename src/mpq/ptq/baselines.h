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

}  // namespace mpq::ptq
