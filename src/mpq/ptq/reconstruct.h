// Methods that quantize a layer against its calibration statistics Σ (layer-wise reconstruction
// of the output): GPTQ (quant/gptq.h) and AdaRound (quant/adaround.h). Each returns the layer's LayerOutcome with its
// parameters and per-layer errors for the trial file (docs/trial-file-format.md).
#pragma once

#include <functional>
#include <string>
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

/// AdaRound of layer `index` against `stats`. Results are cached in
///   <cache_dir>/adaround/<sha256>.h5  (codes int8 [C, d], scales float32 [C], attrs: the
///   layer's trial-file attributes as JSON text, format "mpq-adaround", key)
/// keyed by `stats_key` (what the statistics depend on), the layer, its bits and granularity and
/// every AdaRound option, so trials and ranks share each layer's optimization (cache_dir "" =
/// no cache). Written to a temporary name, fsynced and renamed; an unreadable file is recomputed.
/// With the data objective (w.adaround.objective) `data_inputs` gives the layer's calibration
/// inputs (called on a cache miss only; `stats_key` must then name the quantized prefix) and
/// `stats` serves the comparison errors only.
LayerOutcome quantize_adaround(const model::Network& net, int index, int bits,
                               const WeightConfig& w, const quant::SecondMoment& stats,
                               const std::string& cache_dir, const nlohmann::json& stats_key,
                               const std::string& label,
                               const std::function<quant::LayerInputs()>& data_inputs = {});

}  // namespace mpq::ptq
