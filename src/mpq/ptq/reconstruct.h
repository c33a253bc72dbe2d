// Methods that quantize a layer against its calibration statistics Σ (layer-wise reconstruction
// of the output): GPTQ (quant/gptq.h). Each returns the layer's LayerOutcome with its
// parameters and per-layer errors for the trial file (docs/trial-file-format.md).
#pragma once

#include <vector>

#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"
#include "mpq/quant/output_error.h"

namespace mpq::ptq {

/// GPTQ of `layers` (indices into net.layers(), stats[k] for layers[k], bits[k] each) with the
/// trial's grid, damping, act-order and block size; layers in parallel (quant/gptq.h).
std::vector<LayerOutcome> quantize_gptq(const model::Network& net, const std::vector<int>& layers,
                                        const std::vector<int>& bits, const WeightConfig& w,
                                        const std::vector<quant::SecondMoment>& stats);

}  // namespace mpq::ptq
