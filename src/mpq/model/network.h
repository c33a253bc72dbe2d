// A TorchScript model prepared for post-training quantization.
//
// Network::load() takes any TorchScript archive (torch.jit.save of a traced or scripted model,
// or one of ours) and:
//   1. freezes it (torch::jit::freeze_module: every submodule inlined into one forward graph,
//      parameters become graph constants), in eval mode;
//   1b. rewrites fused attention (aten::_native_multi_head_attention, nn.MultiheadAttention in
//      eval mode) into linear layers (model/attention.h);
//   2. folds every BatchNorm into the conv before it (torch::jit::FoldFrozenConvBatchnorm) unless
//      LoadOptions::fold_bn is false;
//   3. finds the quantizable layers: aten::conv2d / aten::_convolution (not transposed) and
//      aten::linear nodes whose weight is a constant, in graph order (= execution order);
//   4. turns each layer's weight and bias into module attributes mpq_w<i> / mpq_b<i> (a zero
//      bias is added where the layer had none), so a trial swaps weights without touching the
//      graph, and bias correction has a bias to correct;
//   5. inserts mpq::layer_input(x, i) before every layer: a custom operator that hands the layer
//      input to the LayerInputHook active on this thread (observers for calibration statistics,
//      activation fake-quant) and is the identity when no hook is active;
//   6. runs one probe forward on zeros of the input shape to record each layer's input/output
//      shape and MACs.
//
// Layer names come from the frozen weight constants' debug names ("self.stage1.block0.conv1.
// weight" -> "stage1.block0.conv1"). All graph edits happen before the first forward, because
// the graph executor caches its plan on first use.
#pragma once

#include <torch/script.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpq/model/attention.h"
#include "mpq/model/equalize.h"

namespace mpq::model {

enum class LayerKind { kConv2d, kLinear };
const char* layer_kind_name(LayerKind k);

struct LayerInfo {
  int index = 0;     ///< position in execution order, 0-based
  std::string name;  ///< e.g. "stage1.block0.conv1", or "layer<i>" if unnamed
  LayerKind kind = LayerKind::kConv2d;
  int64_t c_out = 0, c_in = 0;  ///< output / input channels (features for linear)
  int64_t kh = 1, kw = 1;       ///< kernel size (1 x 1 for linear)
  int64_t groups = 1;           ///< conv groups (c_in == groups == c_out: depthwise)
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::vector<int64_t> input_shape;   ///< seen by the probe, batch dimension 1
  std::vector<int64_t> output_shape;  ///< derived from input_shape, batch dimension 1
  int64_t macs = 0;                   ///< multiply-accumulates per image (sum over calls)
  int64_t calls = 0;                  ///< times the layer ran in the probe (0: never executed)
  bool had_bias = false;  ///< the original layer had a bias (or got one from BN folding)
  /// The activation that alone consumes the layer's output, after BN folding and equalization
  /// (ReLU, a clip [0, M] such as ReLU6, or none: e.g. into a residual add). AdaRound's data
  /// objective includes it.
  quant::OutputActivation activation;

  /// Length of one output channel's weight vector: c_in / groups * kh * kw.
  int64_t d() const { return c_in / groups * kh * kw; }
  int64_t params() const { return c_out * d(); }
  /// Output positions per image per channel (H_out * W_out for conv, rows for linear).
  int64_t positions() const { return c_out > 0 ? macs / (c_out * d()) : 0; }
  bool depthwise() const { return kind == LayerKind::kConv2d && groups > 1 && groups == c_in; }
};

/// How a model takes its input, from its forward schema: one batch tensor [N, C, H, W]
/// (classifiers, tensor-input detectors) or a list of [C, H, W] images (torchvision detectors).
enum class InputKind { kTensor, kTensorList };

struct LoadOptions {
  bool fold_bn = true;
  /// Who provides torchvision's operators (torchvision::nms) if the archive needs them:
  /// "mpq" (ours) or "torchvision" (its ops library; model/nms.h).
  std::string detection_ops = "mpq";
  /// {C, H, W} for the shape probe. Empty: the archive's `input_shape` attribute if it has one
  /// (mpq's own models do), else {3, 224, 224}.
  std::vector<int64_t> input_shape;
  /// Cross-layer equalization before anything else (model/equalize.h; needs fold_bn).
  EqualizeOptions equalize;
};

/// Called by mpq::layer_input for every layer input while installed with HookScope.
class LayerInputHook {
 public:
  virtual ~LayerInputHook() = default;
  /// @param layer  LayerInfo::index
  /// @param x      the layer's input as the graph computed it
  /// @return       the tensor the layer will consume (x itself to only observe)
  virtual torch::Tensor on_input(int layer, const torch::Tensor& x) = 0;
};

/// Installs a hook for the current thread for the scope's lifetime (nests; restores the old one).
class HookScope {
 public:
  explicit HookScope(LayerInputHook* hook);
  ~HookScope();
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

 private:
  LayerInputHook* previous_;
};

class Network {
 public:
  /// Loads and prepares `path` (see the header comment). Throws InputError naming the file if it
  /// is missing, unreadable, not a TorchScript archive, uses operators this LibTorch does not
  /// know, or has no quantizable layer; ConfigError if the probe input shape does not fit.
  static Network load(const std::string& path, const LoadOptions& options = {});

  const std::vector<LayerInfo>& layers() const { return layers_; }
  const std::string& path() const { return path_; }
  /// SHA-256 of the archive file.
  const std::string& sha256() const { return sha256_; }
  const std::vector<int64_t>& input_shape() const { return input_shape_; }
  /// The archive's metadata (JSON text): its mpq_meta.json extra file (written by
  /// scripts/export_torchvision.py), else its `mpq_meta` string attribute (mpq's own models),
  /// else "".
  const std::string& meta() const { return meta_; }
  int bn_before_fold() const { return bn_before_; }
  bool fold_bn() const { return fold_bn_; }
  int bn_after_fold() const { return bn_after_; }
  /// Fused attention operators rewritten into linear layers at load (model/attention.h).
  int attention_rewritten() const { return attention_rewritten_; }
  /// Weight-bearing operators left in full precision (model/attention.h), in graph order.
  const std::vector<FpWeightOp>& unquantized_ops() const { return fp_ops_; }
  /// Elements of unquantized_ops()' weights.
  int64_t unquantized_weight_count() const;
  /// Weights of the layers the probe ran (a layer it never ran, e.g. the fallback branch of a
  /// scripted nn.MultiheadAttention, counts in neither this nor unquantized_weight_count()).
  int64_t executed_layer_weights() const;
  /// One line naming what stays in full precision whatever the method ("" if nothing):
  /// "12 operators mpq does not quantize hold 28.3M weights (24.7% of the model's): ...".
  std::string coverage_note() const;
  /// The cross-layer equalization applied at load (model/equalize.h) and what it did.
  const EqualizeOptions& equalize_options() const { return equalize_; }
  const EqualizeReport& equalize_report() const { return equalize_report_; }
  /// Bytes of the largest float32 input or output of any quantizable layer for one image (from
  /// the probe's shapes): what one more image adds to a batch's largest activation.
  int64_t max_activation_bytes() const;
  /// `batch` reduced so that batch * max_activation_bytes() <= max_bytes (at least 1; unchanged
  /// when max_bytes <= 0).
  int64_t bounded_batch(int64_t batch, int64_t max_bytes) const;

  /// Full-precision (BN-folded if requested) weight of layer i:
  /// conv [c_out, c_in/groups, kh, kw], linear [c_out, c_in]; float32, contiguous. Never changes.
  const torch::Tensor& fp_weight(int i) const { return fp_weights_[static_cast<size_t>(i)]; }
  /// Full-precision bias [c_out] (zeros if the layer had none). Never changes.
  const torch::Tensor& fp_bias(int i) const { return fp_biases_[static_cast<size_t>(i)]; }

  /// Replaces the weight the model uses for layer i (same shape as fp_weight(i)).
  void set_weight(int i, const torch::Tensor& w);
  /// Replaces the bias the model uses for layer i (shape [c_out]).
  void set_bias(int i, const torch::Tensor& b);
  torch::Tensor weight(int i) const;
  torch::Tensor bias(int i) const;
  /// Puts every layer back to its full-precision weight and bias.
  void restore_fp();

  /// Runs the model on a batch [n, C, H, W] without autograd; returns the output (logits).
  torch::Tensor forward(const torch::Tensor& x);
  /// Runs the model without autograd on a batch or a list of images, as its InputKind wants (a
  /// batch is split into a list for list models; a list is stacked for tensor models, so its
  /// images must share a size), and returns whatever it returns. Errors in the model are
  /// InputError with the TorchScript message's last line.
  c10::IValue run(const torch::Tensor& batch);
  c10::IValue run(const std::vector<torch::Tensor>& images);
  InputKind input_kind() const { return input_kind_; }
  /// Who provides torchvision's operators to this model ("" if it needs none).
  const std::string& detection_ops() const { return detection_ops_; }

  /// The underlying frozen module (for graph inspection in tests).
  torch::jit::Module& module() { return module_; }

  /// While set, run() and forward() use `graph` (an optimized copy of the current state,
  /// model/inference.h) instead of the hooked graph; any weight or bias change clears it. Use
  /// through InferenceScope.
  void set_inference_graph(torch::jit::Module graph);
  void clear_inference_graph() { inference_.reset(); }
  bool has_inference_graph() const { return inference_ != nullptr; }

 private:
  Network() = default;
  torch::jit::Module& active() { return inference_ ? *inference_ : module_; }
  torch::jit::Module module_;
  std::shared_ptr<torch::jit::Module> inference_;  // set_inference_graph
  std::vector<LayerInfo> layers_;
  std::vector<torch::Tensor> fp_weights_, fp_biases_;
  std::vector<int64_t> input_shape_;
  std::string path_, sha256_, meta_, detection_ops_;
  InputKind input_kind_ = InputKind::kTensor;
  int bn_before_ = 0, bn_after_ = 0, attention_rewritten_ = 0;
  std::vector<FpWeightOp> fp_ops_;
  bool fold_bn_ = true;
  EqualizeOptions equalize_;
  EqualizeReport equalize_report_;
  // forward() says once that it takes element 0 of a tuple output (shared by copies).
  std::shared_ptr<std::atomic<bool>> tuple_output_noted_ = std::make_shared<std::atomic<bool>>();
};

/// Routes LibTorch warnings (TorchScript `warnings.warn`, e.g. torchvision's "SSD always returns a
/// (Losses, Detections) tuple in scripting") to mpq's info lines, each distinct message once,
/// instead of glog's multi-line stderr output. Called by the CLI at start.
void install_warning_handler();

/// The archive's mpq_meta.json extra file (written by scripts/export_torchvision.py), read from
/// the zip without loading the model; "" if there is none or the file is not an archive.
std::string archive_extra_meta(const std::string& path);
/// True if the TorchScript archive (a zip) at `path` has the record `record` (e.g. "byteorder",
/// which PyTorch 2.x writes and 1.13 does not); false if it has not or cannot be read.
bool archive_has_record(const std::string& path, const std::string& record);

/// Loads a TorchScript archive with the error handling of Network::load (InputError naming the
/// file) but without preparing it. Used by export and inspection. `meta_json` (optional)
/// receives the archive's mpq_meta.json extra file ("" if absent). An archive that needs
/// torchvision's operators gets them from `detection_ops` (model/nms.h). (model/archive.cpp)
torch::jit::Module load_archive(const std::string& path, std::string* meta_json = nullptr,
                                const std::string& detection_ops = "mpq");

/// Freezes (eval mode), rewrites fused attention into linear layers (model/attention.h; the count
/// to *attention_rewritten), optionally folds BN and equalizes (`equalize`, model/equalize.h; its
/// report to *report); returns the frozen module (freezing clones the module; `m` keeps its
/// weights, but is switched to eval mode). *bn_before, if given, receives the number of
/// BatchNorm nodes in the frozen graph before folding. Throws InputError; ConfigError if
/// equalization is asked for without BN folding.
torch::jit::Module freeze_for_ptq(const torch::jit::Module& m, const std::string& path,
                                  bool fold_bn, int* bn_before = nullptr,
                                  const EqualizeOptions& equalize = {},
                                  EqualizeReport* report = nullptr,
                                  int* attention_rewritten = nullptr);

/// The quantizable layer nodes of a frozen graph in order (see Network::load step 3).
std::vector<torch::jit::Node*> find_layer_nodes(const std::shared_ptr<torch::jit::Graph>& g);

/// Every tensor of a network output (Network::run's value), in a fixed order: tuple and list
/// order, dict entries by key.
void collect_tensors(const c10::IValue& v, std::vector<torch::Tensor>& out);

/// max |a - b| over the tensors of two outputs (collect_tensors) relative to b's largest
/// magnitude; infinite if their number or a shape differs; empty tensors are skipped.
double relative_change(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b);

}  // namespace mpq::model
