// Deployment with common operands (method.md §5): a TorchScript model in which every quantized
// layer runs its multipoint form with standard operators only, loadable by stock LibTorch and
// by Python's torch.jit.load.
//
// For a layer whose channel c has n_c points (P = sum_c n_c, E = P - C extra points):
//   groups == 1 (and linear):
//     z = conv2d(x, K, None, stride, padding, dilation, 1)   K: [P, Cin, kh, kw] integer codes
//                                                            (first points of all C channels,
//                                                            then the E extra points)
//   groups > 1 (grouped / depthwise):
//     z1 = conv2d(x, K_first, groups=G)                      the original layer shape
//     z2 = conv2d(index_select(x, 1, gather), K_extra, groups=E)   each extra point sees its
//                                                            channel's group of inputs
//     z = cat(z1, z2)
//   z = z * s                                    per-output-channel steps s: [P]
//   y = z[:, :C].index_add(1, channel_of_extra, z[:, C:])   segment sum back to C channels
//   y = y + bias                                 then whatever followed (BN folded, ReLU, ...)
// The codes are stored as float32 holding integers in [-L, L] (exactly representable), so an
// int8 backend can take them as they are. Layers kept in full precision are left unchanged.
#pragma once

#include <string>
#include <vector>

#include "mpq/model/network.h"
#include "mpq/quant/layer.h"

namespace mpq::model {

struct ExportResult {
  std::string path;
  double max_abs_diff_vs_simulated = 0;  ///< on a random probe batch, vs net's current weights
  double max_abs_output = 0;             ///< scale of the outputs compared
  /// Fraction of probe inputs whose arg-max agrees. With activation quantizers, float rounding
  /// differences between the expanded and the simulated arithmetic can move an activation that
  /// sits on a rounding boundary by one step, so outputs then differ by more than rounding.
  double argmax_agreement = 1;
};

/// Activation quantizer of one layer input in the exported graph (ptq/activations.h), applied
/// with the stock aten::fake_quantize_per_tensor_affine before the layer.
struct ExportActQuant {
  bool enabled = false;
  double scale = 0;
  int64_t qmin = 0, qmax = 0;
};

/// Builds and saves the expanded model for `net` (same archive, same BN folding). `layers[i]`
/// is layer i's quantization or nullptr to keep it in full precision; `acts` (empty or one per
/// layer) adds activation fake-quant before layers. The model in `net` must hold the dequantized
/// (simulated) weights; `sim_hook` (may be null) is the hook that quantizes its activations. The
/// export is checked against the simulation on a probe batch. Throws InputError if the file
/// cannot be written.
ExportResult export_expanded(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                             const std::string& path, const std::vector<ExportActQuant>& acts = {},
                             LayerInputHook* sim_hook = nullptr);

}  // namespace mpq::model
