#include "mpq/model/network.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "mpq/model/attention.h"
#include "mpq/model/nms.h"
#include "mpq/model/torch_compat.h"
#include "mpq/model/torch_text.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"

namespace mpq::model {
using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

const char* layer_kind_name(LayerKind k) {
  return k == LayerKind::kConv2d ? "conv2d" : "linear";
}

// --- the mpq::layer_input operator ------------------------------------------------------------

namespace {
thread_local LayerInputHook* g_hook = nullptr;

torch::Tensor layer_input_op(torch::Tensor x, int64_t layer) {
  LayerInputHook* hook = g_hook;
  if (hook == nullptr) return x;
  return hook->on_input(static_cast<int>(layer), x);
}
}  // namespace

// CONSERVATIVE alias analysis: the op may return its input (observe) or a new tensor
// (fake-quant), and the optimizer must not reorder or eliminate it.
TORCH_LIBRARY(mpq, m) {
  m.def(torch::schema("mpq::layer_input(Tensor x, int layer) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        layer_input_op);
}

namespace {
class InfoWarnings : public compat::WarningHandler {
 public:
  void on_warning(const std::string& m) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (seen_.insert(m).second) info("warning from the model: " + m.substr(0, m.find('\n')));
  }

 private:
  std::mutex mu_;
  std::set<std::string> seen_;
};
}  // namespace

void install_warning_handler() {
  static InfoWarnings handler;
  compat::set_warning_handler(&handler);
}

HookScope::HookScope(LayerInputHook* hook) : previous_(g_hook) {
  g_hook = hook;
}
HookScope::~HookScope() {
  g_hook = previous_;
}

// --- loading ----------------------------------------------------------------------------------

namespace {

const c10::Symbol kConv2d = c10::Symbol::fromQualString("aten::conv2d");
const c10::Symbol kConvolution = c10::Symbol::fromQualString("aten::_convolution");
const c10::Symbol kLinear = c10::Symbol::fromQualString("aten::linear");
const c10::Symbol kBatchNorm = c10::Symbol::fromQualString("aten::batch_norm");
const c10::Symbol kLayerInput = c10::Symbol::fromQualString("mpq::layer_input");

void collect_nodes(torch::jit::Block* block, std::vector<Node*>& out,
                   const std::function<bool(Node*)>& pred) {
  for (Node* n : block->nodes()) {
    if (pred(n)) out.push_back(n);
    for (auto* b : n->blocks()) collect_nodes(b, out, pred);
  }
}

int count_kind(const std::shared_ptr<Graph>& g, c10::Symbol kind) {
  std::vector<Node*> v;
  collect_nodes(g->block(), v, [&](Node* n) { return n->kind() == kind; });
  return static_cast<int>(v.size());
}

bool is_constant_tensor(Value* v) {
  return v->node()->kind() == c10::prim::Constant && v->type()->cast<c10::TensorType>() != nullptr;
}

std::vector<int64_t> const_ints(Value* v, size_t expect, const std::string& what) {
  auto iv = torch::jit::toIValue(v);
  if (!iv) throw InputError(what + " is not a constant");
  std::vector<int64_t> out;
  if (iv->isIntList()) {
    for (auto x : iv->toIntList()) out.push_back(x);
  } else if (iv->isInt()) {
    out.assign(expect, iv->toInt());
  } else {
    throw InputError(what + " has an unexpected type");
  }
  if (out.size() == 1 && expect == 2) out.push_back(out[0]);
  return out;
}

std::string layer_name_from(Value* w, int index) {
  std::string n = w->debugName();
  if (n.rfind("self.", 0) == 0) n = n.substr(5);
  auto pos = n.rfind(".weight");
  if (pos != std::string::npos && pos > 0) return n.substr(0, pos);
  return "layer" + std::to_string(index);
}

// Which input shape to probe with: the option, else the module's `input_shape` attribute (mpq's
// own models), else the metadata's "input_shape" (scripts/export_torchvision.py and
// export_pretrained.py record it: 240 px for EfficientNet-Lite1, 299 for Inception-v3), else
// 3x224x224.
std::vector<int64_t> pick_input_shape(const Module& original, const LoadOptions& opt,
                                      const std::string& extra_meta) {
  if (!opt.input_shape.empty()) return opt.input_shape;
  if (original.hasattr("input_shape")) {
    auto iv = original.attr("input_shape");
    if (iv.isIntList()) {
      std::vector<int64_t> s;
      for (auto x : iv.toIntList()) s.push_back(x);
      if (s.size() == 3) return s;
    }
  }
  if (!extra_meta.empty()) {
    const auto meta = nlohmann::json::parse(extra_meta, nullptr, false);
    if (meta.is_object() && meta.contains("input_shape") && meta["input_shape"].is_array() &&
        meta["input_shape"].size() == 3) {
      std::vector<int64_t> s;
      for (const auto& v : meta["input_shape"])
        if (v.is_number_integer() && v.get<int64_t>() > 0) s.push_back(v.get<int64_t>());
      if (s.size() == 3) return s;
    }
  }
  return {3, 224, 224};
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
  return t;
}

// Records the input shape of every layer call during the probe.
class ShapeProbe : public LayerInputHook {
 public:
  explicit ShapeProbe(size_t n) : shapes(n), calls(n, 0) {}
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    auto i = static_cast<size_t>(layer);
    if (calls[i]++ == 0) shapes[i] = x.sizes().vec();
    return x;
  }
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> calls;
};

}  // namespace

std::vector<Node*> find_layer_nodes(const std::shared_ptr<Graph>& g) {
  std::vector<Node*> out;
  collect_nodes(g->block(), out, [](Node* n) {
    if (n->kind() == kConv2d || n->kind() == kLinear) return is_constant_tensor(n->input(1));
    if (n->kind() == kConvolution) {
      auto transposed = torch::jit::toIValue(n->input(6));
      if (!transposed || !transposed->isBool() || transposed->toBool()) return false;
      if (!is_constant_tensor(n->input(1))) return false;
      auto w = torch::jit::toIValue(n->input(1))->toTensor();
      return w.dim() == 4;  // conv2d only
    }
    return false;
  });
  return out;
}

Module freeze_for_ptq(const Module& m, const std::string& path, bool fold_bn, int* bn_before,
                      const EqualizeOptions& equalize, EqualizeReport* report,
                      int* attention_rewritten) {
  if (equalize.enabled && !fold_bn)
    throw ConfigError(path +
                      ": /model/equalize needs /model/fold_bn true (equalization scales "
                      "the convs with their BatchNorm folded in)");
  try {
    // freeze_module works on its own clone of the module (torch/csrc/jit/passes/freeze_module.cpp),
    // so `m` is left as it was apart from its training flag: no second copy of the weights.
    Module source = m;
    source.eval();
    Module frozen = torch::jit::freeze_module(source);
    auto graph = frozen.get_method("forward").graph();
    const int attention = decompose_attention(graph);
    if (attention_rewritten) *attention_rewritten = attention;
    if (bn_before) *bn_before = count_kind(graph, kBatchNorm);
    BnAffineMap bn;
    if (equalize.enabled) bn = record_bn_affine(graph);
    if (fold_bn) torch::jit::FoldFrozenConvBatchnorm(graph);
    auto r = equalize_graph(graph, bn, equalize);
    if (report) *report = r;
    return frozen;
  } catch (const c10::Error& e) {
    throw InputError(path + ": cannot freeze the model for quantization: " + short_message(e));
  }
}

namespace {

/// What forward takes after `self`: a Tensor [N, C, H, W] or a List[Tensor] of images.
InputKind forward_input_kind(Module& module, const std::string& path) {
  const auto& args = module.get_method("forward").function().getSchema().arguments();
  if (args.size() < 2) throw InputError(path + ": forward takes no input (expected images)");
  auto t = args[1].type();
  if (t->kind() == c10::TypeKind::ListType &&
      t->expectRef<c10::ListType>().getElementType()->kind() == c10::TypeKind::TensorType)
    return InputKind::kTensorList;
  if (t->kind() != c10::TypeKind::TensorType)
    throw InputError(
        path + ": forward takes " + t->str() +
        "; mpq runs models that take a Tensor [N, C, H, W] or a List[Tensor] of images");
  return InputKind::kTensor;
}

/// The layer of conv/linear node `n`: its geometry, FP weight *w_out and bias *b_out (zeros
/// without one). InputError naming the layer for a non-finite weight or non-constant arguments.
LayerInfo read_layer(Node* n, size_t i, const std::string& path, torch::Tensor* w_out,
                     torch::Tensor* b_out) {
  LayerInfo info;
  info.index = static_cast<int>(i);
  info.name = layer_name_from(n->input(1), info.index);
  // The FP weight, the module attribute the layer reads, and (until dead code elimination
  // in load) the graph constant share one tensor: weights are never written in place
  // (set_weight replaces the attribute), so a large model is held once, not three times.
  torch::Tensor w = torch::jit::toIValue(n->input(1))->toTensor().detach().to(torch::kFloat32);
  if (!w.is_contiguous()) w = w.contiguous();
  std::string where = path + ": layer " + info.name;
  if (!torch::isfinite(w).all().item<bool>())
    throw InputError(where + ": weight contains NaN or Inf");
  torch::Tensor b;
  auto bias_iv = torch::jit::toIValue(n->input(2));
  if (bias_iv && bias_iv->isTensor()) {
    b = bias_iv->toTensor().detach().to(torch::kFloat32).contiguous();
    info.had_bias = true;
  } else if (bias_iv && bias_iv->isNone()) {
    b = torch::zeros({w.size(0)});
  } else {
    throw InputError(where + ": bias is not a constant");
  }
  if (n->kind() == kLinear) {
    if (w.dim() != 2) throw InputError(where + ": linear weight must be 2-D");
    info.kind = LayerKind::kLinear;
    info.c_out = w.size(0);
    info.c_in = w.size(1);
  } else {
    info.kind = LayerKind::kConv2d;
    bool is_conv2d = n->kind() == kConv2d;
    info.stride = const_ints(n->input(3), 2, where + " stride");
    info.padding = const_ints(n->input(4), 2, where + " padding");
    info.dilation = const_ints(n->input(5), 2, where + " dilation");
    auto g = torch::jit::toIValue(n->input(is_conv2d ? 6 : 8));
    if (!g || !g->isInt()) throw InputError(where + ": groups is not a constant");
    info.groups = g->toInt();
    info.c_out = w.size(0);
    info.c_in = w.size(1) * info.groups;
    info.kh = w.size(2);
    info.kw = w.size(3);
  }
  *w_out = w;
  *b_out = b;
  return info;
}

/// Layer i's weight and bias become module attributes read through prim::GetAttr, and its input
/// passes through the hook operator (kLayerInput) that calibration and quantization use.
void hook_layer(Module& module, torch::jit::Graph& g, Value* self, Node* n, size_t i,
                const torch::Tensor& w, const torch::Tensor& b) {
  auto* graph = &g;
  // Weight and bias become attributes read through prim::GetAttr.
  std::string wn = "mpq_w" + std::to_string(i), bn = "mpq_b" + std::to_string(i);
  module.register_attribute(wn, c10::TensorType::get(), w, false);
  module.register_attribute(bn, c10::TensorType::get(), b, false);
  torch::jit::WithInsertPoint guard(n);
  n->replaceInput(1, graph->insertGetAttr(self, wn));
  n->replaceInput(2, graph->insertGetAttr(self, bn));
  Value* idx = graph->insertConstant(static_cast<int64_t>(i));
  Node* hook = graph->create(kLayerInput, {n->input(0), idx});
  hook->output()->setType(c10::TensorType::get());
  hook->insertBefore(n);
  n->replaceInput(0, hook->output());
}

/// Runs the network once on zeros to record every layer's call count, input and output shapes and
/// MACs. ConfigError if the model does not run on its input shape.
void probe_layers(Module& module, InputKind input_kind, const std::vector<int64_t>& input_shape,
                  size_t layer_count, std::vector<LayerInfo>& layers, const std::string& path) {
  ShapeProbe probe(layer_count);
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  try {
    HookScope scope(&probe);
    torch::NoGradGuard no_grad;
    if (input_kind == InputKind::kTensorList)
      module.forward(
          {c10::IValue(std::vector<torch::Tensor>{torch::zeros(c10::IntArrayRef(input_shape))})});
    else
      module.forward({torch::zeros(shape)});
  } catch (const c10::Error& e) {
    throw ConfigError(path + ": the model does not run on input " + shape_text(shape) + ": " +
                      short_message(e));
  } catch (const std::exception& e) {
    throw ConfigError(path + ": the model does not run on input " + shape_text(shape) + ": " +
                      one_line(e.what()));
  }
  for (auto& L : layers) {
    auto i = static_cast<size_t>(L.index);
    L.calls = probe.calls[i];
    L.input_shape = probe.shapes[i];
    if (L.calls == 0) continue;
    if (L.kind == LayerKind::kConv2d) {
      auto& s = L.input_shape;
      if (s.size() != 4) continue;
      int64_t ho = (s[2] + 2 * L.padding[0] - L.dilation[0] * (L.kh - 1) - 1) / L.stride[0] + 1;
      int64_t wo = (s[3] + 2 * L.padding[1] - L.dilation[1] * (L.kw - 1) - 1) / L.stride[1] + 1;
      L.output_shape = {s[0], L.c_out, ho, wo};
      L.macs = L.calls * L.c_out * L.d() * ho * wo;
    } else {
      L.output_shape = L.input_shape;
      L.output_shape.back() = L.c_out;
      int64_t rows = 1;
      for (size_t k = 0; k + 1 < L.input_shape.size(); ++k) rows *= L.input_shape[k];
      L.macs = L.calls * rows * L.c_out * L.c_in;
    }
  }
}

}  // namespace

Network Network::load(const std::string& path, const LoadOptions& options) {
  // Every TorchScript graph mpq runs comes through here: no TensorExpr kernels for any of them.
  compat::disable_tensorexpr_fuser();
  std::string extra_meta;
  Module original = load_archive(path, &extra_meta, options.detection_ops);
  if (!original.find_method("forward"))
    throw InputError(path + ": the TorchScript module has no forward method");
  Network net;
  net.path_ = path;
  net.detection_ops_ = detection_ops_in_use();
  net.fold_bn_ = options.fold_bn;
  net.sha256_ = sha256_file(path);
  net.input_shape_ = pick_input_shape(original, options, extra_meta);
  if (original.hasattr("mpq_meta") && original.attr("mpq_meta").isString())
    net.meta_ = original.attr("mpq_meta").toStringRef();
  if (!extra_meta.empty()) net.meta_ = extra_meta;
  net.equalize_ = options.equalize;
  net.module_ = freeze_for_ptq(original, path, options.fold_bn, &net.bn_before_, options.equalize,
                               &net.equalize_report_, &net.attention_rewritten_);
  original = Module();  // the frozen module holds its own weights
  auto graph = net.module_.get_method("forward").graph();
  net.input_kind_ = forward_input_kind(net.module_, path);
  net.bn_after_ = count_kind(graph, kBatchNorm);

  auto nodes = find_layer_nodes(graph);
  if (nodes.empty())
    throw InputError(
        path + ": no quantizable layer found (expected conv2d or linear with constant weights)");
  Value* self = graph->inputs()[0];
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    torch::Tensor w, b;
    LayerInfo info = read_layer(n, i, path, &w, &b);
    info.activation = output_activation(n);
    net.fp_weights_.push_back(w);
    net.fp_biases_.push_back(b);
    net.layers_.push_back(info);

    hook_layer(net.module_, *graph, self, n, i, w, b);
  }
  torch::jit::EliminateDeadCode(graph);  // the replaced weight/bias constants
  graph->lint();
  net.fp_ops_ = unquantized_weights(graph);

  probe_layers(net.module_, net.input_kind_, net.input_shape_, nodes.size(), net.layers_, path);
  return net;
}

int64_t Network::max_activation_bytes() const {
  int64_t most = 0;
  for (const auto& L : layers_)
    for (const auto* shape : {&L.input_shape, &L.output_shape}) {
      if (shape->empty()) continue;
      int64_t n = 1;
      for (int64_t v : *shape) n *= v;
      most = std::max(most, n);
    }
  return most * static_cast<int64_t>(sizeof(float));
}

int64_t Network::bounded_batch(int64_t batch, int64_t max_bytes) const {
  const int64_t per_image = max_activation_bytes();
  if (max_bytes <= 0 || per_image <= 0) return batch;
  return std::max<int64_t>(1, std::min(batch, max_bytes / per_image));
}

int64_t Network::unquantized_weight_count() const {
  int64_t n = 0;
  for (const auto& op : fp_ops_) n += op.weights;
  return n;
}

int64_t Network::executed_layer_weights() const {
  int64_t n = 0;
  for (const auto& L : layers_)
    if (L.calls > 0) n += L.params();
  return n;
}

std::string Network::coverage_note() const {
  if (fp_ops_.empty()) return "";
  std::map<std::string, std::pair<int, int64_t>> by_op;  // op -> (count, weights)
  for (const auto& op : fp_ops_) {
    by_op[op.op].first += 1;
    by_op[op.op].second += op.weights;
  }
  const double fp = static_cast<double>(unquantized_weight_count());
  const double all = fp + static_cast<double>(executed_layer_weights());
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "%zu operator(s) mpq does not quantize hold %.0f weights (%.1f%% of the model's), "
                "which stay in full precision:",
                fp_ops_.size(), fp, all > 0 ? 100.0 * fp / all : 0.0);
  std::string out = buf;
  bool first = true;
  for (const auto& [op, cw] : by_op) {
    out += (first ? " " : ", ") + op + " x" + std::to_string(cw.first) + " (" +
           std::to_string(cw.second) + ")";
    first = false;
  }
  return out + " (mpq inspect lists them)";
}

void Network::set_inference_graph(torch::jit::Module graph) {
  inference_ = std::make_shared<torch::jit::Module>(std::move(graph));
}

void Network::set_weight(int i, const torch::Tensor& w) {
  MPQ_ASSERT(w.sizes() == fp_weights_[static_cast<size_t>(i)].sizes(), "weight shape mismatch");
  inference_.reset();
  module_.setattr("mpq_w" + std::to_string(i), w.to(torch::kFloat32).contiguous());
}

void Network::set_bias(int i, const torch::Tensor& b) {
  MPQ_ASSERT(b.sizes() == fp_biases_[static_cast<size_t>(i)].sizes(), "bias shape mismatch");
  inference_.reset();
  module_.setattr("mpq_b" + std::to_string(i), b.to(torch::kFloat32).contiguous());
}

torch::Tensor Network::weight(int i) const {
  return module_.attr("mpq_w" + std::to_string(i)).toTensor();
}
torch::Tensor Network::bias(int i) const {
  return module_.attr("mpq_b" + std::to_string(i)).toTensor();
}

void Network::restore_fp() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    set_weight(static_cast<int>(i), fp_weights_[i]);
    set_bias(static_cast<int>(i), fp_biases_[i]);
  }
}

c10::IValue Network::run(const torch::Tensor& batch) {
  if (input_kind_ == InputKind::kTensorList) {
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < batch.size(0); ++i) images.push_back(batch[i]);
    return run(images);
  }
  torch::NoGradGuard no_grad;
  try {
    return active().forward({batch});
  } catch (const c10::Error& e) {
    throw InputError(path_ + ": the model failed on a batch " + shape_text(batch.sizes().vec()) +
                     ": " + short_message(e));
  } catch (const std::exception& e) {
    throw InputError(path_ + ": the model failed on a batch " + shape_text(batch.sizes().vec()) +
                     ": " + one_line(e.what()));
  }
}

c10::IValue Network::run(const std::vector<torch::Tensor>& images) {
  if (input_kind_ == InputKind::kTensor) return run(torch::stack(images));
  torch::NoGradGuard no_grad;
  try {
    return active().forward({c10::IValue(images)});
  } catch (const c10::Error& e) {
    throw InputError(path_ + ": the model failed on " + std::to_string(images.size()) +
                     " images: " + short_message(e));
  } catch (const std::exception& e) {
    throw InputError(path_ + ": the model failed on " + std::to_string(images.size()) +
                     " images: " + one_line(e.what()));
  }
}

torch::Tensor Network::forward(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  c10::IValue out;
  try {
    out = input_kind_ == InputKind::kTensorList ? run(x) : active().forward({x});
  } catch (const c10::Error& e) {
    throw InputError(path_ + ": the model failed on a batch " + shape_text(x.sizes().vec()) + ": " +
                     short_message(e));
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(path_ + ": the model failed on a batch " + shape_text(x.sizes().vec()) + ": " +
                     one_line(e.what()));
  }
  if (out.isTensor()) return out.toTensor();
  if (out.isTuple() && !out.toTupleRef().elements().empty() &&
      out.toTupleRef().elements()[0].isTensor()) {
    if (!tuple_output_noted_->exchange(true))
      info(path_ + ": the model returns " + describe_value(out) +
           ": its first element is taken as the logits");
    return out.toTupleRef().elements()[0].toTensor();
  }
  throw InputError(path_ + ": the model returns " + describe_value(out) +
                   ", expected the logits: a Tensor [N, classes] or a tuple whose first element "
                   "is one (export a forward that returns the logits)");
}

void collect_tensors(const c10::IValue& v, std::vector<torch::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) collect_tensors(e, out);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) collect_tensors(e, out);
  } else if (v.isGenericDict()) {
    std::vector<std::pair<std::string, c10::IValue>> items;
    for (const auto& e : v.toGenericDict())
      if (e.key().isString()) items.push_back({e.key().toStringRef(), e.value()});
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [k, e] : items) collect_tensors(e, out);
  }
}

double relative_change(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].sizes() != b[i].sizes()) return std::numeric_limits<double>::infinity();
    if (a[i].numel() == 0) continue;
    auto fa = a[i].to(torch::kFloat64), fb = b[i].to(torch::kFloat64);
    diff = std::max(diff, (fa - fb).abs().max().item<double>());
    scale = std::max(scale, fb.abs().max().item<double>());
  }
  return diff / std::max(scale, 1e-30);
}

}  // namespace mpq::model
