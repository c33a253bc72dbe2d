// Methods that quantize a layer against its calibration statistics Σ (layer-wise reconstruction
// of the output): GPTQ (quant/gptq.h). Each returns the layer's LayerOutcome with its
// parameters and per-layer errors for the trial file (docs/trial-file-format.md).
#pragma once

#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"
#include "mpq/quant/output_error.h"

namespace mpq::ptq {

/// GPTQ of one layer with the trial's grid, damping, act-order and block size.
LayerOutcome quantize_gptq(const model::Network& net, const model::LayerInfo& L, int bits,
                           const WeightConfig& w, const quant::SecondMoment& stats);

}  // namespace mpq::ptq
