#include "mpq/model/attention.h"

#include <cmath>
#include <optional>
#include <set>

namespace mpq::model {
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {

c10::Symbol sym(const char* s) {
  return c10::Symbol::fromQualString(s);
}

void collect(torch::jit::Block* block, std::vector<Node*>& out, c10::Symbol kind) {
  for (Node* n : block->nodes()) {
    if (n->kind() == kind) out.push_back(n);
    for (auto* b : n->blocks()) collect(b, out, kind);
  }
}

std::optional<torch::Tensor> constant_tensor(Value* v) {
  if (v->node()->kind() != c10::prim::Constant) return std::nullopt;
  auto iv = torch::jit::toIValue(v);
  if (!iv || !iv->isTensor()) return std::nullopt;
  return iv->toTensor();
}

std::optional<int64_t> constant_int(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (!iv || !iv->isInt()) return std::nullopt;
  return iv->toInt();
}

/// "self.blocks.0.attn.in_proj_weight" -> "blocks.0.attn"; a parameter of the top module
/// ("self.mix") -> "mix" if `top_parameter`, else ""; "" for an unnamed constant.
std::string module_of(Value* w, bool top_parameter) {
  std::string n = w->debugName();
  if (n.rfind("self.", 0) != 0) return "";
  n = n.substr(5);
  const auto dot = n.rfind('.');
  if (dot == std::string::npos) return top_parameter ? n : "";
  return n.substr(0, dot);
}

/// The rewrite of one fused attention node (see the header); false (nothing changed) when the
/// node is not in the form the rewrite covers.
bool decompose(Graph& g, Node* n) {
  const auto E = constant_int(n->input(3)), H = constant_int(n->input(4));
  const auto wqkv = constant_tensor(n->input(5)), bqkv = constant_tensor(n->input(6));
  if (!E || !H || *H <= 0 || *E % *H != 0 || !wqkv || !bqkv) return false;
  if (!constant_tensor(n->input(7)) || !constant_tensor(n->input(8))) return false;
  const auto mask = torch::jit::toIValue(n->input(9));
  if (!mask || !mask->isNone()) return false;
  // The attention weights: without need_weights the operator returns no tensor for them (a
  // scripted module still passes that on in a tuple its caller drops).
  const auto need_weights = torch::jit::toIValue(n->input(10));
  const bool weights_unused = !n->outputs()[1]->hasUses();
  if (!weights_unused && (!need_weights || !need_weights->isBool() || need_weights->toBool()))
    return false;
  const int64_t e = *E, h = *H, d = e / h;
  if (wqkv->dim() != 2 || wqkv->size(0) != 3 * e || wqkv->size(1) != e || bqkv->numel() != 3 * e)
    return false;

  torch::jit::WithInsertPoint guard(n);
  auto integer = [&](int64_t v) { return g.insertConstant(c10::IValue(v)); };
  const std::string base = module_of(n->input(5), false);
  const char* names[3] = {"q_proj", "k_proj", "v_proj"};
  Value* heads[3];
  for (int part = 0; part < 3; ++part) {
    Value* w = g.insertConstant(wqkv->narrow(0, part * e, e).contiguous());
    if (!base.empty()) w->setDebugName("self." + base + "." + names[part] + ".weight");
    Value* b = g.insertConstant(bqkv->reshape({3 * e}).narrow(0, part * e, e).contiguous());
    Value* y = g.insert(sym("aten::linear"), {n->input(part), w, b});
    y = g.insert(sym("aten::unflatten"),
                 {y, integer(-1), g.insertConstant(c10::IValue(std::vector<int64_t>{h, d}))});
    heads[part] = g.insert(sym("aten::transpose"), {y, integer(1), integer(2)});  // [B, H, T, D]
  }
  Value* q = g.insert(sym("aten::div"),
                      {heads[0], g.insertConstant(c10::IValue(std::sqrt(static_cast<double>(d))))});
  Value* kt = g.insert(sym("aten::transpose"), {heads[1], integer(-2), integer(-1)});
  Value* scores = g.insert(sym("aten::matmul"), {q, kt});
  Value* none = g.insertConstant(c10::IValue());
  Value* attn = g.insert(sym("aten::softmax"), {scores, integer(-1), none});
  Value* o = g.insert(sym("aten::matmul"), {attn, heads[2]});
  o = g.insert(sym("aten::transpose"), {o, integer(1), integer(2)});
  o = g.insert(sym("aten::flatten"), {o, integer(2), integer(-1)});  // [B, T, E]
  Value* out = g.insert(sym("aten::linear"), {o, n->input(7), n->input(8)});
  n->outputs()[0]->replaceAllUsesWith(out);
  if (!weights_unused) n->outputs()[1]->replaceAllUsesWith(g.insertConstant(torch::empty({0})));
  n->destroy();
  return true;
}

const std::set<std::string>& weight_ops() {
  static const std::set<std::string> ops = {"aten::_native_multi_head_attention",
                                            "aten::_transformer_encoder_layer_fwd",
                                            "aten::matmul",
                                            "aten::mm",
                                            "aten::bmm",
                                            "aten::addmm",
                                            "aten::baddbmm",
                                            "aten::einsum",
                                            "aten::linear",
                                            "aten::conv1d",
                                            "aten::conv2d",
                                            "aten::conv3d",
                                            "aten::_convolution",
                                            "aten::convolution",
                                            "aten::conv_transpose1d",
                                            "aten::conv_transpose2d",
                                            "aten::conv_transpose3d",
                                            "aten::embedding",
                                            "aten::embedding_bag",
                                            "aten::lstm",
                                            "aten::gru",
                                            "aten::rnn_tanh",
                                            "aten::rnn_relu"};
  return ops;
}

void collect_weight_ops(torch::jit::Block* block, std::vector<Node*>& out) {
  for (Node* n : block->nodes()) {
    if (weight_ops().count(n->kind().toQualString())) out.push_back(n);
    for (auto* b : n->blocks()) collect_weight_ops(b, out);
  }
}

}  // namespace

int decompose_attention(const std::shared_ptr<Graph>& graph) {
  std::vector<Node*> nodes;
  collect(graph->block(), nodes, sym("aten::_native_multi_head_attention"));
  int rewritten = 0;
  for (Node* n : nodes) rewritten += decompose(*graph, n) ? 1 : 0;
  return rewritten;
}

std::vector<FpWeightOp> unquantized_weights(const std::shared_ptr<Graph>& graph) {
  std::vector<Node*> nodes;
  collect_weight_ops(graph->block(), nodes);
  std::set<Value*> seen;  // a constant shared by several operators counts once
  std::vector<FpWeightOp> out;
  for (Node* n : nodes) {
    FpWeightOp op;
    op.op = n->kind().toQualString();
    auto take = [&](Value* v) {
      auto t = constant_tensor(v);
      if (!t || t->dim() < 2 || !t->is_floating_point() || !seen.insert(v).second) return;
      if (op.name.empty()) op.name = module_of(v, true);
      op.weights += t->numel();
    };
    for (Value* v : n->inputs()) {
      if (v->node()->kind() == c10::prim::ListConstruct) {  // einsum operands, RNN parameters
        for (Value* item : v->node()->inputs()) take(item);
      } else {
        take(v);
      }
    }
    if (op.weights > 0) out.push_back(op);
  }
  return out;
}

}  // namespace mpq::model
