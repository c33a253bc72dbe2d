// Cross-layer equalization (CLE) and bias absorption as a model transform applied before any
// quantization method (config model.equalize; Nagel, van Baalen, Blankevoort, Welling, "Data-Free
// Quantization Through Weight Equalization and Bias Correction", ICCV 2019, §4.1 and §4.2;
// ../shared/ptq-methods.md).
//
// Pairs. Layer 1 (conv or linear) whose output feeds, through at most one activation, exactly one
// layer 2 and nothing else: conv -> conv, conv -> depthwise, depthwise -> conv, linear -> linear.
// The activation must be positively homogeneous per channel: none, ReLU (aten::relu), or a clip
// [0, M] (ReLU6: aten::clamp / aten::hardtanh with min 0), for which Relu6Mode says what happens.
// Grouped convs other than depthwise, and pairs through anything else (residual adds, pooling,
// concatenation), are left alone.
//
// Equalization. For a pair with r1_c = max |W1[c, ...]| (output channel c of layer 1) and
// r2_c = max |W2[:, c, ...]| (input channel c of layer 2), s_c = sqrt(r1_c * r2_c) / r2_c;
// W1[c] /= s_c, b1[c] /= s_c, W2[:, c] *= s_c makes both ranges sqrt(r1_c * r2_c) and leaves the
// function unchanged (ReLU(x / s) = ReLU(x) / s for s > 0; a clip [0, M] becomes [0, M / s_c]).
// Pairs are equalized in graph order, and the whole pass repeated until no scale moves by more
// than 1e-6 (relative) or 100 passes.
//
// Bias absorption (data-free, needs the BatchNorm after layer 1: its output is taken as
// N(beta_c, gamma_c^2) per channel, scaled with the equalization): c = max(0, beta_c - 3 gamma_c),
// b1 -= c, b2 += W2 c (conv: W2 summed over its kernel), clip max M_c -= c. Exact where the
// activation input is >= c (the paper's 3-sigma premise) and away from zero-padded borders.
#pragma once

#include <torch/script.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "mpq/quant/adaround.h"

namespace mpq::model {

/// What happens to a pair whose activation is a clip [0, M] (ReLU6), which is not positively
/// homogeneous: kClip equalizes and scales the clip per channel (max becomes M / s_c: the
/// function is unchanged; the clip becomes aten::relu followed by aten::minimum with a per-channel
/// constant); kReplace replaces the clip by ReLU first (the paper's choice; changes the FP
/// function); kSkip leaves such pairs alone.
enum class Relu6Mode { kClip, kReplace, kSkip };
const char* relu6_mode_name(Relu6Mode m);
Relu6Mode parse_relu6_mode(const std::string& name);  ///< ConfigError on an unknown name

struct EqualizeOptions {
  bool enabled = false;
  Relu6Mode relu6 = Relu6Mode::kClip;
  bool absorb_bias = true;
  int max_passes = 100;
  /// A string that differs when the transformed FP model may differ ("" when disabled): part of
  /// cache keys of loaded networks and FP references.
  std::string key() const;
};

/// One equalized pair (layer indices in find_layer_nodes order).
struct EqualizedPair {
  int first = 0, second = 0;
  std::string activation;  ///< "none", "relu", "clip" (scaled per channel), "relu (was clip)"
  bool bias_absorbed = false;
  double min_scale = 1, max_scale = 1;  ///< over channels, the product over passes
};

struct EqualizeReport {
  std::vector<EqualizedPair> pairs;
  int passes = 0;
  int relu6_replaced = 0;  ///< clips replaced by ReLU (Relu6Mode::kReplace)
  int relu6_skipped = 0;   ///< pairs left alone because of a clip (Relu6Mode::kSkip)
  /// e.g. "stem_conv->block0.dw_conv (clip, absorbed), ..." with layer names from `names`.
  std::string describe(const std::vector<std::string>& names) const;
};

/// Graph helpers shared with layer discovery (network.cpp).
/// A clip [0, M] node (aten::clamp or aten::hardtanh with constant bounds, min 0, max > 0): M;
/// else a negative number.
double clip_max(const torch::jit::Node* n);
bool is_relu(const torch::jit::Node* n);  ///< aten::relu or aten::relu_
/// The activation that is the only consumer of a conv/linear node's output (ReLU or a clip
/// [0, M]); kind kNone when the output goes anywhere else (a residual add, several users).
quant::OutputActivation output_activation(const torch::jit::Node* layer);

/// The BatchNorm after each conv, recorded before folding: per-channel gamma and beta.
struct BnAffine {
  torch::Tensor gamma, beta;
};
using BnAffineMap = std::unordered_map<const torch::jit::Node*, BnAffine>;

/// Records, for every conv node of `graph` whose only use is an aten::batch_norm with constant
/// parameters, that BatchNorm's gamma (1 without affine) and beta (0). Call before folding:
/// FoldFrozenConvBatchnorm keeps the conv nodes.
BnAffineMap record_bn_affine(const std::shared_ptr<torch::jit::Graph>& graph);

/// Equalizes the pairs of a frozen, BN-folded graph in place: new weight and bias constants
/// (keeping the weights' debug names, hence layer names) and rewritten activations. `bn` from
/// record_bn_affine before folding (may be empty: then no bias is absorbed).
EqualizeReport equalize_graph(const std::shared_ptr<torch::jit::Graph>& graph,
                              const BnAffineMap& bn, const EqualizeOptions& options);

}  // namespace mpq::model
