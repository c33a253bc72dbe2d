// Evaluation on an optimized graph: the network's current weights frozen into a graph without
// mpq's hook operators, then torch::jit::optimize_for_inference.
//
// A prepared Network (network.h) runs a frozen graph that reads each layer's weight from a
// module attribute and calls the mpq::layer_input operator before every layer: what calibration,
// weight swapping and activation hooks need. Both keep LibTorch from optimizing it:
// optimize_for_inference (oneDNN's blocked layout kept between layers, weights reordered and
// prepacked once, conv + add + ReLU fused; torch/csrc/jit/api/module.h) runs the frozen default
// models 1.6-3.0x faster, but it cannot keep a tensor in the blocked layout across an operator
// it does not know (bench/optimize_for_inference.py). So evaluation builds a second graph from
// the network's state at that moment:
//   1. freeze_module of the prepared module: the weight and bias attributes become constants;
//   2. every mpq::layer_input(x, i) is removed, or replaced by mpq::fake_quantize(x, scale, qmin,
//      qmax) where layer i's input is quantized (the operator form of quant::fake_quantize,
//      what the hooked path applies);
//   3. torch::jit::optimize_for_inference.
// The copy shares no state with the Network: build it after the weights are final and drop it
// (Network::clear_inference_graph, or any weight change) before they change.
//
// What it gains (docs/benchmarks.md, "Evaluation engines"): weight-only evaluation of the
// classifiers runs on prepacked oneDNN convolutions in the blocked layout end to end. Activation-
// quantized evaluation does not gain with LibTorch 1.13: fake quantization is not an operator of
// the blocked layout, so the tensor goes back to the plain layout before every quantized layer
// and forth after it, which costs what prepacking saves (default models 0.88 -> 1.05 s,
// ResNet-18 at 224x224 7.1 -> 6.3 s); and writing it with the blocked layout's own operators
// (tensor-tensor mul/add, relu: exact) materializes a full-size constant for every operation
// (0.9 -> 4.7 s), while its clamp is computed wrongly by the MKLDNN pass. `auto` therefore
// evaluates activation-quantized trials on the hooked graph. Detectors stay hooked too
// (sweep/trial.cpp, evaluate_network).
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "mpq/model/network.h"

namespace mpq::model {

/// Fake quantization of one layer's input (ptq/activations.h), zero point 0.
struct InputFakeQuant {
  bool enabled = false;
  double scale = 0;
  int64_t qmin = 0, qmax = 0;
};

/// The optimized graph of `net` with its current weights and biases; `acts` is empty (weights
/// only) or has one entry per layer. Throws InputError naming the model when LibTorch cannot
/// build or optimize it (the caller may fall back to the hooked graph).
torch::jit::Module build_inference_graph(Network& net, const std::vector<InputFakeQuant>& acts);

/// Which graph evaluates (config key eval.engine; not part of a trial's identity).
///   kAuto       the optimized graph for weight-only evaluation, unless LibTorch cannot build
///               it or its output on a probe batch differs from the hooked graph's by more than
///               kEngineTolerance of the output's magnitude; the hooked graph otherwise and for
///               activation-quantized evaluation (the manifest says why)
///   kOptimized  the optimized graph or an error
///   kHooked     the hooked graph (mpq before this engine existed)
enum class EvalEngine { kAuto, kOptimized, kHooked };
const char* eval_engine_name(EvalEngine e);             ///< "auto", "optimized", "hooked"
EvalEngine parse_eval_engine(const std::string& name);  ///< ConfigError if unknown

/// Largest relative difference (max |a - b| / max |b|) between the optimized and the hooked
/// graph's outputs that kAuto accepts. The optimized graph computes the same function with sums
/// in another order (blocked layouts, fused add): 1e-6 relative measured on the default models.
constexpr double kEngineTolerance = 1e-4;

/// While alive, `net` evaluates on the engine asked for with the network's current weights and
/// biases and activation quantizers `acts` (empty, or one per layer). With the hooked graph the
/// caller must install the activation hook itself (hooked() tells).
class InferenceScope {
 public:
  InferenceScope(Network& net, EvalEngine engine, const std::vector<InputFakeQuant>& acts);
  ~InferenceScope();
  InferenceScope(const InferenceScope&) = delete;
  InferenceScope& operator=(const InferenceScope&) = delete;
  bool hooked() const { return !net_.has_inference_graph(); }
  /// "optimized" or "hooked", with the reason when kAuto fell back.
  const std::string& description() const { return description_; }
  double build_seconds() const { return build_seconds_; }

 private:
  Network& net_;
  std::string description_;
  double build_seconds_ = 0;
};

}  // namespace mpq::model
