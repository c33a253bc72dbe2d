#include "mpq/model/inference.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/library.h>

#include <chrono>
#include <cmath>
#include <functional>

#include "mpq/quant/fake_quant.h"
#include "mpq/util/error.h"
#include "mpq/util/stopwatch.h"

namespace mpq::model {
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;

// The one-pass fake quantization (quant/fake_quant.h, what the hooked path applies) as an
// operator of the inference graph. Internal: exported models use the stock
// aten::fake_quantize_per_tensor_affine (bit-identical; it also writes a gradient mask), since
// they must load in PyTorch.
TORCH_LIBRARY_FRAGMENT(mpq, m) {
  m.def("mpq::fake_quantize(Tensor x, float scale, int qmin, int qmax) -> Tensor",
        [](const at::Tensor& x, double scale, int64_t qmin, int64_t qmax) {
          return quant::fake_quantize(x, scale, qmin, qmax);
        });
}

namespace {

void collect_hooks(Block* block, std::vector<Node*>& out) {
  static const c10::Symbol kLayerInput = c10::Symbol::fromQualString("mpq::layer_input");
  for (Node* n : block->nodes()) {
    if (n->kind() == kLayerInput) out.push_back(n);
    for (Block* b : n->blocks()) collect_hooks(b, out);
  }
}

// Replaces every mpq::layer_input(x, i) by x, or by the fake quantization of x.
void rewrite_hooks(Graph& g, const std::vector<InputFakeQuant>& acts) {
  std::vector<Node*> hooks;
  collect_hooks(g.block(), hooks);
  for (Node* h : hooks) {
    const auto layer = torch::jit::toIValue(h->input(1));
    MPQ_ASSERT(layer && layer->isInt(), "mpq::layer_input without a constant layer index");
    const auto i = static_cast<size_t>(layer->toInt());
    torch::jit::Value* x = h->input(0);
    if (i < acts.size() && acts[i].enabled) {
      torch::jit::WithInsertPoint guard(h);
      x = g.insert(c10::Symbol::fromQualString("mpq::fake_quantize"),
                   {h->input(0), acts[i].scale, acts[i].qmin, acts[i].qmax});
    }
    h->output()->replaceAllUsesWith(x);
    h->destroy();
  }
}

}  // namespace

torch::jit::Module build_inference_graph(Network& net, const std::vector<InputFakeQuant>& acts) {
  MPQ_ASSERT(acts.empty() || acts.size() == net.layers().size(), "one quantizer per layer");
  try {
    // freeze_module works on a clone that shares the tensors: the attributes become constants
    // of the copy's graph, the Network's module is left as it is.
    torch::jit::Module m = torch::jit::freeze_module(net.module());
    auto graph = m.get_method("forward").graph();
    rewrite_hooks(*graph, acts);
    torch::jit::EliminateDeadCode(graph);
    graph->lint();
    return torch::jit::optimize_for_inference(m);
  } catch (const std::exception& e) {
    std::string m = e.what();
    throw InputError(net.path() +
                     ": cannot build the optimized evaluation graph: " + m.substr(0, m.find('\n')));
  }
}

const char* eval_engine_name(EvalEngine e) {
  switch (e) {
    case EvalEngine::kAuto:
      return "auto";
    case EvalEngine::kOptimized:
      return "optimized";
    case EvalEngine::kHooked:
      return "hooked";
  }
  return "?";
}

EvalEngine parse_eval_engine(const std::string& name) {
  for (auto e : {EvalEngine::kAuto, EvalEngine::kOptimized, EvalEngine::kHooked})
    if (name == eval_engine_name(e)) return e;
  throw ConfigError("/eval/engine: must be one of auto, optimized, hooked, got '" + name + "'");
}

namespace {

// max |a - b| / max |b| over the outputs' tensors of the optimized and the hooked graph (no
// activation hook) on a seeded random batch of 4; infinite when the outputs' structure or shapes
// differ; NaN for models taking a list of images (detectors, whose post-processing may order
// near-ties either way).
double probe_difference(Network& net) {
  if (net.input_kind() != InputKind::kTensor) return std::nan("");
  std::vector<int64_t> shape = {4};
  shape.insert(shape.end(), net.input_shape().begin(), net.input_shape().end());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20261202);
  const torch::Tensor x = torch::randn(shape, gen);
  const c10::IValue optimized = net.run(x);
  torch::jit::Module graph = net.module();  // the handle only: set_inference_graph keeps its own
  c10::IValue hooked;
  {
    HookScope scope(nullptr);
    torch::NoGradGuard no_grad;
    hooked = graph.forward({x});
  }
  std::vector<torch::Tensor> ta, tb;
  collect_tensors(optimized, ta);
  collect_tensors(hooked, tb);
  if (ta.empty()) return INFINITY;
  return relative_change(ta, tb);
}

}  // namespace

InferenceScope::InferenceScope(Network& net, EvalEngine engine,
                               const std::vector<InputFakeQuant>& acts)
    : net_(net) {
  net_.clear_inference_graph();
  if (engine == EvalEngine::kHooked) {
    description_ = "hooked";
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  try {
    // The probe compares the weight-only graphs: with activation quantization a value within
    // float reordering error of a rounding boundary may land on the neighbouring level, so two
    // correct graphs can differ by a quantization step there. The fake quantization itself is
    // exact by construction (insert_fake_quant_ops; unit test [inference]).
    net_.set_inference_graph(build_inference_graph(net_, {}));
    const double diff = probe_difference(net_);
    if (!(diff <= kEngineTolerance) && !std::isnan(diff)) {
      net_.clear_inference_graph();
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "the optimized graph's output differs from the hooked graph's by %.3g "
                    "relative on a probe batch",
                    diff);
      if (engine == EvalEngine::kOptimized) throw InputError(net_.path() + ": " + buf);
      description_ = std::string("hooked (") + buf + ")";
    } else {
      bool quantized = false;
      for (const auto& a : acts) quantized = quantized || a.enabled;
      if (quantized && engine == EvalEngine::kAuto) {
        net_.clear_inference_graph();
        description_ = "hooked (activation-quantized evaluation is not optimized: no faster)";
      } else {
        if (quantized) net_.set_inference_graph(build_inference_graph(net_, acts));
        description_ = "optimized";
      }
    }
  } catch (const InputError& e) {
    net_.clear_inference_graph();
    if (engine == EvalEngine::kOptimized) throw;
    description_ = std::string("hooked (") + e.what() + ")";
  }
  build_seconds_ = seconds_since(t0);
}

InferenceScope::~InferenceScope() {
  net_.clear_inference_graph();
}

}  // namespace mpq::model
