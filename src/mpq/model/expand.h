// Deployment with common operands (method.md §5): a TorchScript model in which every quantized
// layer runs its multipoint form with standard operators only, loadable by stock LibTorch and
// by Python's torch.jit.load.
//
// For a layer whose channel c has n_c points (P = sum_c n_c, E = P - C extra points), with
// W1[c] = s[first point of c] * K[first point of c] and W2[e] = s[e] * K[e] for the extra points:
//   y = conv2d(x, W1, bias, stride, padding, dilation, groups)   the original layer's shape,
//                                                               steps and bias fused in
//   z = conv2d(x, W2, None, stride, padding, dilation, 1)        E output channels
//       (groups > 1: conv2d(index_select(x, 1, gather), W2, groups=E), each extra point seeing
//        its channel's group of inputs)
//   y.index_add_(1, channel_of_extra, z)                         segment sum, in place
// (linear layers likewise, on the last dimension). So the extra points cost their MACs plus one
// in-place add of E channels, and a layer without extra points is the original layer. Folding
// the step into the weights is what an integer backend does at requantization; the integer form
// stays in the archive: attributes mpq_layer<i>_codes (int8 [P, d]), mpq_layer<i>_steps
// (float32 [P]) and mpq_layer<i>_channel (int64 [P], output channel of each point), points in
// the graph's order (first point of every channel, then the extra points); docs/formats.md.
// Layers kept in full precision are left unchanged.
#pragma once

#include <string>
#include <vector>

#include "mpq/model/network.h"
#include "mpq/quant/layer.h"

namespace mpq::model {

struct ExportResult {
  std::string path;
  double max_abs_diff_vs_simulated = 0;  ///< on the check batch, vs net's current weights
  double max_abs_output = 0;             ///< scale of the outputs compared
  double relative_diff = 0;              ///< max_abs_diff_vs_simulated / max_abs_output
  int64_t check_inputs = 0;              ///< images the check ran on
  bool check_on_images = false;          ///< real (calibration) images, not random inputs
  /// Fraction of probe inputs whose arg-max agrees. With activation quantizers, float rounding
  /// differences between the expanded and the simulated arithmetic can move an activation that
  /// sits on a rounding boundary by one step, so outputs then differ by more than rounding.
  double argmax_agreement = 1;
  int int8_layers = 0;  ///< export_int8: layers running on the quantized kernels
  // Set only when the difference exceeded its bound (see export_expanded):
  double check_repeat_diff = 0;     ///< the simulation run twice on the check batch
  double rounding_sensitivity = 0;  ///< the simulation under a kRoundingProbe input perturbation
  bool check_inconclusive = false;  ///< float32 rounding explains the difference: kept, warned
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
/// export is checked against the simulation on `check_images` (a batch [N, C, H, W] the model
/// takes: calibration images; undefined: a seeded random batch): if their outputs differ by more
/// than kExportBound (weight-only; kExportBoundActivations with activation quantizers, whose
/// rounding boundaries float reordering can cross) of the outputs' largest magnitude, the file
/// is removed and InputError says so (a model that is not a function of its input, e.g. dropout
/// forced on in eval, or an expanded graph that is wrong) -- unless the simulation itself moves
/// by at least a tenth of that difference when its inputs are perturbed by a relative
/// kRoundingProbe: then the network amplifies float32 rounding on these inputs (a chaotic random
/// network), the check is inconclusive, the file is kept and a warning says so (result fields
/// check_inconclusive, rounding_sensitivity). A detector whose box set changes is
/// recorded (max_abs_diff infinite), not refused: a box at the score threshold may flip. Throws
/// InputError if the file cannot be written.
ExportResult export_expanded(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                             const std::string& path, const std::vector<ExportActQuant>& acts = {},
                             LayerInputHook* sim_hook = nullptr,
                             const torch::Tensor& check_images = {});

/// Largest export-vs-simulation difference, relative to the outputs' largest magnitude, that
/// export_expanded accepts: float32 reordering of the same arithmetic (measured <= 4e-6 on the
/// tests' and torchvision models).
constexpr double kExportBound = 1e-3;
/// The same with activation quantizers: an activation on a rounding boundary may move by one
/// step.
constexpr double kExportBoundActivations = 5e-2;
/// Relative input perturbation that measures how much a network amplifies float32 rounding:
/// about the relative error of a float32 dot product of a few thousand terms.
constexpr double kRoundingProbe = 1e-6;

/// True if layer `q` (with input quantizer `act`) can run on 8-bit integer kernels: quantized
/// with at most 8 bits, one bit width, no split channels, and its input quantized to 8 bits.
bool int8_eligible(const quant::QuantizedLayer* q, const ExportActQuant& act);

/// Builds and saves a model whose eligible layers (int8_eligible) run on LibTorch's quantized
/// CPU kernels: the layer input is quantized to quint8 with the simulation's activation step
/// (aten::quantize_per_tensor; a signed grid uses zero point 128), the first points and the
/// extra points are two quantized::conv2d / quantized::linear with per-channel qint8 weights
/// (the codes) and per-channel steps, their outputs are requantized to quint8 with a per-tensor
/// range observed on `calibration_images` (MinMax, as PyTorch's observer) and dequantized,
/// and the extra points are added into their channels in float (index_add_). Other layers
/// are exported as by export_expanded. The integer form is recorded as the same attributes.
/// Uses the onednn engine if this LibTorch has it, else qnnpack. The requantization of the
/// layer outputs is the one arithmetic step the simulation does not model; the check against
/// the simulation (ExportResult) shows its size.
ExportResult export_int8(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                         const std::string& path, const std::vector<ExportActQuant>& acts,
                         LayerInputHook* sim_hook, const torch::Tensor& calibration_images);

/// Selects the quantized engine export_int8 uses (onednn, else qnnpack) for this process;
/// InputError if neither exists. Models on quantized kernels run on the selected engine.
void select_int8_engine();

}  // namespace mpq::model
