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
};

/// Builds and saves the expanded model for `net` (same archive, same BN folding). `layers[i]`
/// is layer i's quantization or nullptr to keep it in full precision. The model in `net` must
/// hold the dequantized (simulated) weights: the export is checked against it on a probe batch.
/// Throws InputError if the file cannot be written.
ExportResult export_expanded(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                             const std::string& path);

}  // namespace mpq::model
