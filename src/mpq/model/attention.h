// Attention as quantizable layers, and the weights that stay in full precision.
//
// PyTorch's nn.MultiheadAttention runs, in eval mode without autograd, as one fused operator,
// aten::_native_multi_head_attention(query, key, value, embed_dim, num_heads, in_proj_weight,
// in_proj_bias, out_proj.weight, out_proj.bias, mask, ...): torch.jit.trace records it (ViT,
// DeiT, any model built on the module), and torch.jit.script keeps it as the fast path beside
// the Python fallback (which uses aten::linear). Its four projections are three quarters of a
// ViT's weights, invisible to a pass that looks for aten::linear.
//
// decompose_attention() rewrites every such operator whose weights are constants (a frozen
// graph), with no mask and whose attention weights are not asked for (need_weights false, or
// the output unused; a scripted module passes the operator's empty weights on in a tuple its
// caller drops: they become an empty tensor), into the same computation on
// aten::linear layers: q, k, v = linear(query|key|value, in_proj_weight[part], in_proj_bias[part])
// (three layers, named <module>.q_proj / .k_proj / .v_proj after the in_proj_weight's module),
// each split into heads [B, H, T, D], softmax(q / sqrt(D) @ k^T) @ v, heads merged, and
// linear(., out_proj.weight, out_proj.bias) (<module>.out_proj). That is the operator's own
// arithmetic (it too scales q before the product), so outputs agree to float rounding. A
// masked call (or one whose attention weights are used) is left as it is and reported by
// unquantized_weights().
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mpq::model {

/// Rewrites the fused attention operators of `graph` into linear layers (see above); returns how
/// many were rewritten.
int decompose_attention(const std::shared_ptr<torch::jit::Graph>& graph);

/// Weights (float constants of two or more dimensions) consumed by weight-bearing operators that
/// are not quantizable layers: attention left fused, matmul/bmm/addmm/einsum with a constant
/// operand, conv1d/3d, transposed convs, embeddings, recurrent layers.
struct FpWeightOp {
  std::string op;       ///< e.g. "aten::_native_multi_head_attention"
  std::string name;     ///< the first weight's module name, e.g. "encoder.layers.0.attn"
  int64_t weights = 0;  ///< elements of its constant weights
};

/// The weight-bearing operators of a prepared graph that mpq leaves in full precision, in graph
/// order (call after the layers' weights became attributes: they are no longer constants).
std::vector<FpWeightOp> unquantized_weights(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace mpq::model
