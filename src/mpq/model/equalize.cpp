#include "mpq/model/equalize.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mpq/model/network.h"
#include "mpq/util/error.h"

namespace mpq::model {
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {
c10::Symbol sym(const char* s) {
  return c10::Symbol::fromQualString(s);
}
}  // namespace

double clip_max(const Node* a) {
  const auto k = a->kind();
  if (k != sym("aten::clamp") && k != sym("aten::clamp_") && k != sym("aten::hardtanh") &&
      k != sym("aten::hardtanh_"))
    return -1;
  if (a->inputs().size() != 3) return -1;
  auto lo = torch::jit::toIValue(a->input(1)), hi = torch::jit::toIValue(a->input(2));
  if (!lo || !hi || !lo->isScalar() || !hi->isScalar()) return -1;
  if (lo->toScalar().toDouble() != 0.0) return -1;
  const double m = hi->toScalar().toDouble();
  return m > 0 ? m : -1;
}

bool is_relu(const Node* a) {
  return a->kind() == sym("aten::relu") || a->kind() == sym("aten::relu_");
}

quant::OutputActivation output_activation(const Node* layer) {
  quant::OutputActivation a;
  const auto& uses = layer->output()->uses();
  if (uses.size() != 1 || uses[0].offset != 0) return a;
  Node* user = uses[0].user;
  if (is_relu(user)) {
    a.kind = quant::OutputActivation::Kind::kRelu;
  } else if (const double m = clip_max(user); m > 0) {
    a.kind = quant::OutputActivation::Kind::kClip;
    a.max = m;
  }
  return a;
}

const char* relu6_mode_name(Relu6Mode m) {
  switch (m) {
    case Relu6Mode::kClip:
      return "clip";
    case Relu6Mode::kReplace:
      return "replace";
    case Relu6Mode::kSkip:
      return "skip";
  }
  return "?";
}

Relu6Mode parse_relu6_mode(const std::string& name) {
  for (auto m : {Relu6Mode::kClip, Relu6Mode::kReplace, Relu6Mode::kSkip})
    if (name == relu6_mode_name(m)) return m;
  throw ConfigError("/model/equalize/relu6: must be one of clip, replace, skip, got '" + name +
                    "'");
}

std::string EqualizeOptions::key() const {
  if (!enabled) return "";
  return std::string("cle:") + relu6_mode_name(relu6) + (absorb_bias ? ":absorb" : ":noabsorb") +
         ":" + std::to_string(max_passes);
}

std::string EqualizeReport::describe(const std::vector<std::string>& names) const {
  std::string s;
  auto name = [&](int i) {
    return i >= 0 && static_cast<size_t>(i) < names.size() ? names[static_cast<size_t>(i)]
                                                           : "layer" + std::to_string(i);
  };
  for (const auto& p : pairs) {
    if (!s.empty()) s += ", ";
    s += name(p.first) + "->" + name(p.second) + " (" + p.activation +
         (p.bias_absorbed ? ", bias absorbed" : "") + ")";
  }
  return s.empty() ? "none" : s;
}

namespace {

torch::Tensor const_tensor(Value* v) {
  auto iv = torch::jit::toIValue(v);
  return iv && iv->isTensor() ? iv->toTensor() : torch::Tensor();
}

struct Layer {
  Node* node = nullptr;
  bool linear = false;
  int64_t groups = 1;
  torch::Tensor w, b;         // float64 working copies
  torch::Tensor gamma, beta;  // BN after the layer (undefined if none)
  bool changed = false;
};

struct Pair {
  int first = 0, second = 0;
  Node* act = nullptr;  // nullptr: none
  double clip = -1;     // M for a clip activation
  bool replaced = false;
  torch::Tensor total;  // product of the scales applied, [C]
  torch::Tensor max;    // clip max per channel after equalization and absorption
  bool absorbed = false;
};

int64_t groups_of(Node* n) {
  if (n->kind() == sym("aten::linear")) return 1;
  auto g = torch::jit::toIValue(n->input(n->kind() == sym("aten::conv2d") ? 6 : 8));
  return g && g->isInt() ? g->toInt() : -1;
}

// Input-channel multiplier of a depthwise conv (c_out = k * c_in, groups = c_in), 0 if `L` is
// not one, 1 for groups == 1 (each output row sees every input channel).
int64_t depthwise_multiplier(const Layer& L) {
  if (L.linear || L.groups == 1) return 0;
  const int64_t c_in = L.w.size(1) * L.groups;
  if (L.groups != c_in || L.w.size(1) != 1) return -1;
  return L.w.size(0) / c_in;
}

// Range of every input channel of layer 2.
torch::Tensor input_range(const Layer& L) {
  const auto a = L.w.abs();
  if (L.groups == 1) return a.transpose(0, 1).flatten(1).amax(1);
  const int64_t k = depthwise_multiplier(L);
  return a.flatten(1).amax(1).view({-1, k}).amax(1);
}

// Layer 2's weight with input channel c multiplied by s_c.
torch::Tensor scale_inputs(const Layer& L, const torch::Tensor& s) {
  if (L.linear) return L.w * s.view({1, -1});
  if (L.groups == 1) return L.w * s.view({1, -1, 1, 1});
  return L.w * s.repeat_interleave(depthwise_multiplier(L)).view({-1, 1, 1, 1});
}

// W2 c: what a constant input c adds to layer 2's output (conv: over the whole kernel).
torch::Tensor constant_response(const Layer& L, const torch::Tensor& c) {
  if (L.linear) return torch::mv(L.w, c);
  if (L.groups == 1) return (L.w.sum({2, 3}) * c.view({1, -1})).sum(1);
  return L.w.sum({1, 2, 3}) * c.repeat_interleave(depthwise_multiplier(L));
}

torch::Tensor row_view(const torch::Tensor& s, const torch::Tensor& w) {
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[0] = -1;
  return s.view(shape);
}

}  // namespace

BnAffineMap record_bn_affine(const std::shared_ptr<Graph>& graph) {
  BnAffineMap out;
  for (Node* n : graph->nodes()) {
    if (n->kind() != sym("aten::batch_norm")) continue;
    Node* conv = n->input(0)->node();
    if (conv->kind() != sym("aten::conv2d") && conv->kind() != sym("aten::_convolution")) continue;
    if (conv->output()->uses().size() != 1) continue;
    auto gamma = torch::jit::toIValue(n->input(1)), beta = torch::jit::toIValue(n->input(2));
    if (!gamma || !beta) continue;
    const auto w = const_tensor(conv->input(1));
    if (!w.defined()) continue;
    const int64_t c = w.size(0);
    BnAffine a;
    a.gamma = gamma->isTensor() ? gamma->toTensor().detach().to(torch::kFloat64).clone()
                                : torch::ones({c}, torch::kFloat64);
    a.beta = beta->isTensor() ? beta->toTensor().detach().to(torch::kFloat64).clone()
                              : torch::zeros({c}, torch::kFloat64);
    if (a.gamma.numel() != c || a.beta.numel() != c) continue;
    out[conv] = a;
  }
  return out;
}

namespace {

// Every layer's weight and bias as float64 working copies, with its BatchNorm if recorded.
std::vector<Layer> collect_layers(const std::vector<Node*>& nodes, const BnAffineMap& bn) {
  std::vector<Layer> layers(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    Layer& L = layers[i];
    L.node = nodes[i];
    L.linear = nodes[i]->kind() == sym("aten::linear");
    L.groups = groups_of(nodes[i]);
    L.w = const_tensor(nodes[i]->input(1)).detach().to(torch::kFloat64).clone();
    auto b = const_tensor(nodes[i]->input(2));
    L.b = b.defined() ? b.detach().to(torch::kFloat64).clone()
                      : torch::zeros({L.w.size(0)}, torch::kFloat64);
    if (auto it = bn.find(nodes[i]); it != bn.end()) {
      L.gamma = it->second.gamma.abs();
      L.beta = it->second.beta;
    }
  }
  return layers;
}

// The pairs, in graph order (see the header); counts ReLU6 pairs skipped in `report`.
std::vector<Pair> find_pairs(const std::vector<Node*>& nodes, const std::vector<Layer>& layers,
                             const EqualizeOptions& options, EqualizeReport& report) {
  std::unordered_map<const Node*, int> index;
  for (size_t i = 0; i < nodes.size(); ++i) index[nodes[i]] = static_cast<int>(i);
  std::vector<Pair> pairs;
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    const auto& uses = n->output()->uses();
    if (uses.size() != 1 || uses[0].offset != 0) continue;
    Node* a = uses[0].user;
    Node* next = a;
    Pair p;
    p.first = static_cast<int>(i);
    if (!index.count(a)) {
      const double m = clip_max(a);
      if (!is_relu(a) && m < 0) continue;
      const auto& after = a->output()->uses();
      if (after.size() != 1 || after[0].offset != 0) continue;
      next = after[0].user;
      p.act = a;
      p.clip = m;
    }
    auto j = index.find(next);
    if (j == index.end()) continue;
    p.second = j->second;
    const Layer &L1 = layers[i], &L2 = layers[static_cast<size_t>(p.second)];
    if (L1.linear != L2.linear || L1.groups < 1 || depthwise_multiplier(L2) < 0) continue;
    if (L1.w.size(0) != (L2.linear ? L2.w.size(1) : L2.w.size(1) * L2.groups)) continue;
    // A weight shared by two layers (a module called twice) cannot be scaled for one of them.
    if (n->input(1)->uses().size() != 1 || next->input(1)->uses().size() != 1) continue;
    if (p.clip > 0 && options.relu6 == Relu6Mode::kSkip) {
      ++report.relu6_skipped;
      continue;
    }
    if (p.clip > 0 && options.relu6 == Relu6Mode::kReplace) {
      p.replaced = true;
      p.clip = -1;
    }
    p.total = torch::ones({L1.w.size(0)}, torch::kFloat64);
    pairs.push_back(p);
  }

  return pairs;
}

// Equalizes every pair, repeating the pass until no scale moves by 1e-6; returns the passes.
int equalize_pairs(std::vector<Layer>& layers, std::vector<Pair>& pairs, int max_passes) {
  int passes = 0;
  for (int pass = 0; pass < max_passes && !pairs.empty(); ++pass) {
    double moved = 0;
    for (auto& p : pairs) {
      Layer &L1 = layers[static_cast<size_t>(p.first)], &L2 = layers[static_cast<size_t>(p.second)];
      const auto r1 = L1.w.abs().flatten(1).amax(1);
      const auto r2 = input_range(L2);
      auto s = torch::sqrt(r1 * r2) / r2;
      s = torch::where((r1 > 0) & (r2 > 0), s, torch::ones_like(s));
      L1.w = L1.w / row_view(s, L1.w);
      L1.b = L1.b / s;
      if (L1.gamma.defined()) {
        L1.gamma = L1.gamma / s;
        L1.beta = L1.beta / s;
      }
      L2.w = scale_inputs(L2, s);
      p.total = p.total * s;
      L1.changed = L2.changed = true;
      moved = std::max(moved, (s - 1).abs().max().item<double>());
    }
    passes = pass + 1;
    if (moved < 1e-6) break;
  }

  return passes;
}

// Bias absorption (if asked), then the clips' per-channel maxima.
void absorb_biases(std::vector<Layer>& layers, std::vector<Pair>& pairs, bool absorb) {
  for (auto& p : pairs) {
    Layer &L1 = layers[static_cast<size_t>(p.first)], &L2 = layers[static_cast<size_t>(p.second)];
    if (p.clip > 0) p.max = torch::full_like(p.total, p.clip) / p.total;
    if (!absorb || !L1.gamma.defined()) continue;
    auto c = torch::clamp_min(L1.beta - 3 * L1.gamma, 0);
    if (p.max.defined()) c = torch::minimum(c, p.max);
    L1.b = L1.b - c;
    L2.b = L2.b + constant_response(L2, c);
    if (p.max.defined()) p.max = p.max - c;
    p.absorbed = true;
  }
}

// Writes the layers and activations back into the graph and reports each pair.
void write_back(Graph& graph, const std::vector<Layer>& layers, const std::vector<Pair>& pairs,
                EqualizeReport& report) {
  // Write back: new constants (the weight keeps its debug name: layer names come from it) and
  // the rewritten activations.
  for (const auto& L : layers) {
    if (!L.changed) continue;
    Node* n = L.node;
    const auto dtype = const_tensor(n->input(1)).scalar_type();
    torch::jit::WithInsertPoint guard(n);
    Value* w = graph.insertConstant(L.w.to(dtype).contiguous());
    if (n->input(1)->hasDebugName()) w->setDebugName(n->input(1)->debugName());
    Value* b = graph.insertConstant(L.b.to(dtype).contiguous());
    n->replaceInput(1, w);
    n->replaceInput(2, b);
  }
  for (const auto& p : pairs) {
    EqualizedPair e;
    e.first = p.first;
    e.second = p.second;
    e.bias_absorbed = p.absorbed;
    e.min_scale = p.total.min().item<double>();
    e.max_scale = p.total.max().item<double>();
    e.activation = p.act == nullptr ? "none"
                   : p.replaced     ? "relu (was clip)"
                   : p.clip > 0     ? "clip"
                                    : "relu";
    if (p.act && (p.replaced || p.clip > 0)) {
      // clip(x, 0, M) -> relu(x), then (kClip) minimum with the per-channel maxima.
      torch::jit::WithInsertPoint guard(p.act);
      Value* out = graph.insert(sym("aten::relu"), {p.act->input(0)});
      if (p.clip > 0) {
        const auto& L1 = layers[static_cast<size_t>(p.first)];
        auto m = p.max.to(const_tensor(L1.node->input(1)).scalar_type());
        if (!L1.linear) m = m.view({1, -1, 1, 1});
        out = graph.insert(sym("aten::minimum"), {out, graph.insertConstant(m.contiguous())});
      } else {
        ++report.relu6_replaced;
      }
      p.act->output()->replaceAllUsesWith(out);
      p.act->destroy();
    }
    report.pairs.push_back(e);
  }
}

}  // namespace

EqualizeReport equalize_graph(const std::shared_ptr<Graph>& graph, const BnAffineMap& bn,
                              const EqualizeOptions& options) {
  EqualizeReport report;
  if (!options.enabled) return report;
  const auto nodes = find_layer_nodes(graph);
  auto layers = collect_layers(nodes, bn);
  auto pairs = find_pairs(nodes, layers, options, report);
  report.passes = equalize_pairs(layers, pairs, options.max_passes);
  absorb_biases(layers, pairs, options.absorb_bias);
  write_back(*graph, layers, pairs, report);
  torch::jit::EliminateDeadCode(graph);
  return report;
}

}  // namespace mpq::model
