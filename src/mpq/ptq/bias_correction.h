// Empirical bias correction (Banner, Nahshan, Soudry, NeurIPS 2019, §4 "bias correction";
// Nagel et al., "Data-Free Quantization", ICCV 2019, §4.2 empirical variant).
//
// Quantization shifts each output channel's mean. A layer's output is linear in its input, so
// its mean over the calibration images is E[y_c] = w_c · μ + b_c with μ the mean input vector
// (mean im2col patch of the channel's group, or mean input row). For every quantized layer in
// execution order mpq measures μ_FP in the full-precision network and μ_Q in the network whose
// earlier layers are already quantized and corrected (and whose activations are quantized, if
// the trial quantizes them), and sets
//     b_c <- b_c + w_c · μ_FP - w~_c · μ_Q
// so the channel's mean output matches the FP network's. Works with every weight method (it
// only reads the weights the network uses). Cost: one pass over the calibration images per
// quantized layer (plus one for the FP means).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"

namespace mpq::ptq {

/// Corrects the biases of the layers with weight_quantized[i] in `net` (which holds the
/// quantized weights). `activation_hook` (may be null) quantizes layer inputs during the passes.
/// Returns per layer {"bias_shift_mean_abs": ..., "bias_shift_rel": ...} (empty for others).
std::vector<nlohmann::json> correct_biases(model::Network& net, const CalibrationContext& calib,
                                           const std::vector<bool>& weight_quantized,
                                           model::LayerInputHook* activation_hook);

}  // namespace mpq::ptq
