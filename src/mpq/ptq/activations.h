// Activation quantization at the inputs of quantized layers (method.md §6-7), for any
// TorchScript model: the quantizers run inside the mpq::layer_input hook (model/network.h).
//
// Per tensor, symmetric around 0 (zero point 0). A layer whose input was never negative on the
// calibration images (after ReLU/ReLU6) gets an unsigned grid {0 .. 2^b - 1}; otherwise a signed
// one {-(2^(b-1) - 1) .. 2^(b-1) - 1}. The range α (scale = α / qmax) comes from the calibration
// images run through the full-precision network:
//   max            the largest |x| seen
//   percentile     the p-th percentile of |x| in a seeded sample of the inputs
//   mse            the MSE-optimal scale on (an evenly strided 16384-value subsample of) that
//                  sample (exact search, quant/coefficient_search.h)
//   aciq_laplace / aciq_gaussian   analytic clipping (quant/ranges.h), one-sided when unsigned
// Quantization gives bit for bit what torch::fake_quantize_per_tensor_affine gives (round half to
// even, clamp; the stock operator the exported model uses), computed by quant::fake_quantize in
// one pass without the gradient mask the stock operator also writes. Conventions for the first
// and last layer's input: "quantize" (the trial's bits), "fp", or "8bit".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/model/network.h"
#include "mpq/ptq/quantize.h"

namespace mpq::ptq {

enum class ActRange { kMax, kPercentile, kMse, kAciqLaplace, kAciqGaussian };
/// "max", "percentile", "mse", "aciq_laplace", "aciq_gaussian".
const char* act_range_name(ActRange r);
/// Inverse of act_range_name; ConfigError for an unknown name.
ActRange parse_act_range(const std::string& name);

struct ActivationConfig {
  int bits = 32;  ///< 32 = activations stay in full precision
  ActRange range = ActRange::kMax;
  double percentile = 99.99;
  LayerRule first_layer = LayerRule::kQuantize, last_layer = LayerRule::kQuantize;
  int64_t sample_size = 1 << 18;  ///< values kept per layer for percentile / mse / aciq
  bool enabled() const { return bits < 32; }
};

struct ActQuant {
  bool enabled = false;
  bool is_unsigned = false;
  int bits = 32;
  double scale = 0;
  int64_t qmin = 0, qmax = 0;
  double observed_min = 0, observed_max = 0;
};

/// Calibrates one quantizer per layer (disabled where weight_quantized[i] is false or the
/// first/last-layer convention says "fp"). net must hold FP weights.
std::vector<ActQuant> calibrate_activations(model::Network& net, const ActivationConfig& config,
                                            const CalibrationContext& calib,
                                            const std::vector<bool>& weight_quantized);

/// Applies the quantizers to layer inputs while installed with model::HookScope.
class ActivationQuantizer : public model::LayerInputHook {
 public:
  explicit ActivationQuantizer(std::vector<ActQuant> params) : params_(std::move(params)) {}
  torch::Tensor on_input(int layer, const torch::Tensor& x) override;
  const std::vector<ActQuant>& params() const { return params_; }

 private:
  std::vector<ActQuant> params_;
};

}  // namespace mpq::ptq
