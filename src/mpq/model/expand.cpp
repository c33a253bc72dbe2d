#include "mpq/model/expand.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>

#include "mpq/model/export_check.h"
#include "mpq/util/error.h"

namespace mpq::model {
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {

c10::Symbol sym(const char* s) {
  return c10::Symbol::fromQualString(s);
}

Value* constant(Graph& g, const c10::IValue& v) {
  return g.insertConstant(v);
}

// Weights of the selected points, step times code, as float32 [n, d]: each row is exactly the
// float product the simulation forms for a one-point channel.
torch::Tensor scaled_rows(const quant::QuantizedLayer& q, const std::vector<int64_t>& points) {
  auto out = torch::empty({static_cast<int64_t>(points.size()), q.d}, torch::kFloat32);
  float* p = out.data_ptr<float>();
  for (size_t r = 0; r < points.size(); ++r) {
    const int8_t* k = q.codes.data() + points[r] * q.d;
    const float s = q.scales[static_cast<size_t>(points[r])];
    for (int64_t j = 0; j < q.d; ++j)
      p[static_cast<int64_t>(r) * q.d + j] = s * static_cast<float>(k[j]);
  }
  return out;
}

// The common-operand form of one layer as archive attributes (read back by tools and tests):
// codes int8 [P, d], steps float32 [P], output channel of each point int64 [P], points in the
// order of the graph (first point of every channel, then the extra points).
void record_points(torch::jit::Module& m, int layer, const quant::QuantizedLayer& q,
                   const std::vector<int64_t>& order) {
  const int64_t P = static_cast<int64_t>(order.size());
  auto codes = torch::empty({P, q.d}, torch::kInt8);
  auto steps = torch::empty({P}, torch::kFloat32);
  auto channel = torch::empty({P}, torch::kInt64);
  for (int64_t r = 0; r < P; ++r) {
    const auto p = static_cast<size_t>(order[static_cast<size_t>(r)]);
    std::copy_n(q.codes.data() + static_cast<int64_t>(p) * q.d, q.d,
                codes.data_ptr<int8_t>() + r * q.d);
    steps[r] = q.scales[p];
    channel[r] = q.point_channel[p];
  }
  const std::string prefix = "mpq_layer" + std::to_string(layer) + "_";
  m.register_attribute(prefix + "codes", c10::TensorType::get(), codes);
  m.register_attribute(prefix + "steps", c10::TensorType::get(), steps);
  m.register_attribute(prefix + "channel", c10::TensorType::get(), channel);
}

// The points of a layer in graph order: the first point of every channel (`first`), then the
// extra points (`extra`, with their output channels `extra_channel`); for grouped layers the
// input channels each extra point sees (`gather`, cin/groups per extra point).
struct PointOrder {
  std::vector<int64_t> first, extra, extra_channel, gather;
  std::vector<int64_t> order() const {
    std::vector<int64_t> o = first;
    o.insert(o.end(), extra.begin(), extra.end());
    return o;
  }
};

PointOrder order_points(const LayerInfo& L, const quant::QuantizedLayer& q) {
  PointOrder po;
  int64_t p = 0;
  for (int64_t c = 0; c < q.c_out; ++c) {
    const int np = q.points[static_cast<size_t>(c)];
    po.first.push_back(p);
    for (int i = 1; i < np; ++i) {
      po.extra.push_back(p + i);
      po.extra_channel.push_back(c);
    }
    p += np;
  }
  if (L.kind == LayerKind::kConv2d && L.groups > 1) {
    const int64_t cin_g = L.c_in / L.groups, per = q.c_out / L.groups;
    for (int64_t c : po.extra_channel)
      for (int64_t j = 0; j < cin_g; ++j) po.gather.push_back(c / per * cin_g + j);
  }
  return po;
}

// Replaces layer node n by its multipoint form (see expand.h); returns the graph order of the
// points (indices into q's channel-major points).
std::vector<int64_t> rewrite_layer(Graph& g, Node* n, const LayerInfo& L,
                                   const quant::QuantizedLayer& q, const torch::Tensor& bias) {
  const PointOrder po = order_points(L, q);
  const auto& extra_channel = po.extra_channel;
  const int64_t C = q.c_out, E = static_cast<int64_t>(po.extra.size());

  torch::jit::WithInsertPoint guard(n);
  Value* x = n->input(0);
  const bool conv = L.kind == LayerKind::kConv2d;
  auto ints = [&](const std::vector<int64_t>& v) { return constant(g, c10::IValue(v)); };
  auto integer = [&](int64_t v) { return constant(g, c10::IValue(v)); };
  Value* none = g.insertConstant(c10::IValue());
  const int64_t cin_g = conv ? L.c_in / L.groups : L.c_in;
  Value* y = nullptr;
  // The first points: the original layer with the steps and the bias fused in.
  auto W1 = scaled_rows(q, po.first);
  if (conv)
    y = g.insert(sym("aten::conv2d"),
                 {x, constant(g, W1.view({C, cin_g, L.kh, L.kw})), constant(g, bias),
                  ints(L.stride), ints(L.padding), ints(L.dilation), integer(L.groups)});
  else
    y = g.insert(sym("aten::linear"), {x, constant(g, W1), constant(g, bias)});
  if (E > 0) {
    // The extra points: one small layer over the same input, added in place into their channels.
    auto W2 = scaled_rows(q, po.extra);
    Value* z = nullptr;
    if (!conv) {
      z = g.insert(sym("aten::linear"), {x, constant(g, W2), none});
    } else if (L.groups == 1) {
      z = g.insert(sym("aten::conv2d"),
                   {x, constant(g, W2.view({E, cin_g, L.kh, L.kw})), none, ints(L.stride),
                    ints(L.padding), ints(L.dilation), integer(1)});
    } else {
      // Each extra point sees its channel's group of inputs.
      Value* xg = g.insert(sym("aten::index_select"),
                           {x, integer(1), constant(g, torch::tensor(po.gather, torch::kInt64))});
      z = g.insert(sym("aten::conv2d"),
                   {xg, constant(g, W2.view({E, cin_g, L.kh, L.kw})), none, ints(L.stride),
                    ints(L.padding), ints(L.dilation), integer(E)});
    }
    y = g.insert(
        sym("aten::index_add_"),
        {y, integer(conv ? 1 : -1), constant(g, torch::tensor(extra_channel, torch::kInt64)), z});
  }
  n->output()->replaceAllUsesWith(y);
  n->destroy();
  return po.order();
}

// Inserts the activation fake-quant of the simulation before layer node n.
void insert_fake_quant(Graph& g, Node* n, const ExportActQuant& a) {
  torch::jit::WithInsertPoint guard(n);
  Value* q = g.insert(
      sym("aten::fake_quantize_per_tensor_affine"),
      {n->input(0), constant(g, c10::IValue(a.scale)), constant(g, c10::IValue(int64_t{0})),
       constant(g, c10::IValue(a.qmin)), constant(g, c10::IValue(a.qmax))});
  n->replaceInput(0, q);
}

// --- int8 -------------------------------------------------------------------------------------

// Per-tensor affine parameters of an 8-bit unsigned output covering [lo, hi] (and 0), as
// PyTorch's MinMaxObserver chooses them for quint8.
std::pair<double, int64_t> output_qparams(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  double scale = (hi - lo) / 255.0;
  if (!(scale > 0)) scale = 1e-8;
  const auto zp = static_cast<int64_t>(std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0));
  return {scale, zp};
}

// The integer form of one layer: first points and extra points as quantized weights with
// per-output-channel steps, and the float weights the simulation's arithmetic corresponds to.
struct Int8Layer {
  int index = 0;
  std::vector<int64_t> order, extra_channel;
  int64_t C = 0, E = 0;
  torch::Tensor w1, w2;         // float weights (step * code), [C|E, cin_g, kh, kw] or [.., d]
  torch::Tensor q1, q2;         // qint8 per-channel
  torch::Tensor bias;           // [C]
  std::vector<int64_t> gather;  // grouped layers: input channels of the extra points
  double in_scale = 0;
  int64_t in_zp = 0;
  bool fuse_relu = false;  // no extra points and the layer's only use is a ReLU: fused into it
  double y_lo = 1e300, y_hi = -1e300, z_lo = 1e300, z_hi = -1e300;  // observed output ranges
};

torch::Tensor per_channel_qint8(const quant::QuantizedLayer& q, const std::vector<int64_t>& points,
                                const std::vector<int64_t>& shape) {
  const auto n = static_cast<int64_t>(points.size());
  auto codes = torch::empty({n, q.d}, torch::kInt8);
  auto steps = torch::empty({n}, torch::kFloat64);
  for (int64_t r = 0; r < n; ++r) {
    const auto p = static_cast<size_t>(points[static_cast<size_t>(r)]);
    std::copy_n(q.codes.data() + static_cast<int64_t>(p) * q.d, q.d,
                codes.data_ptr<int8_t>() + r * q.d);
    steps[r] = static_cast<double>(q.scales[p]);
  }
  return at::_make_per_channel_quantized_tensor(codes.view(shape), steps,
                                                torch::zeros({n}, torch::kInt64), 0);
}

Int8Layer plan_int8_layer(const LayerInfo& L, const quant::QuantizedLayer& q,
                          const torch::Tensor& bias, const ExportActQuant& act) {
  Int8Layer r;
  r.index = L.index;
  const PointOrder po = order_points(L, q);
  r.extra_channel = po.extra_channel;
  r.gather = po.gather;
  r.C = q.c_out;
  r.E = static_cast<int64_t>(po.extra.size());
  r.order = po.order();
  const bool conv = L.kind == LayerKind::kConv2d;
  const int64_t cin_g = conv ? L.c_in / L.groups : L.c_in;
  auto shape = [&](int64_t n) {
    return conv ? std::vector<int64_t>{n, cin_g, L.kh, L.kw} : std::vector<int64_t>{n, L.c_in};
  };
  r.w1 = scaled_rows(q, po.first).view(shape(r.C));
  r.q1 = per_channel_qint8(q, po.first, shape(r.C));
  if (r.E > 0) {
    r.w2 = scaled_rows(q, po.extra).view(shape(r.E));
    r.q2 = per_channel_qint8(q, po.extra, shape(r.E));
  }
  r.bias = bias.to(torch::kFloat32).contiguous();
  r.in_scale = act.scale;
  r.in_zp = act.qmin < 0 ? 128 : 0;  // signed grid {-127..127} on quint8 with zero point 128
  return r;
}

// The float arithmetic of the int8 layer's two outputs (first points with bias; extra points)
// on the simulation's layer input.
std::pair<torch::Tensor, torch::Tensor> int8_layer_float(const LayerInfo& L, const Int8Layer& r,
                                                         const torch::Tensor& x) {
  torch::Tensor y, z;
  if (L.kind == LayerKind::kLinear) {
    y = torch::linear(x, r.w1, r.bias);
    if (r.E > 0) z = torch::linear(x, r.w2);
  } else {
    y = torch::conv2d(x, r.w1, r.bias, L.stride, L.padding, L.dilation, L.groups);
    if (r.E > 0) {
      if (L.groups == 1)
        z = torch::conv2d(x, r.w2, {}, L.stride, L.padding, L.dilation, 1);
      else
        z = torch::conv2d(x.index_select(1, torch::tensor(r.gather, torch::kInt64)), r.w2, {},
                          L.stride, L.padding, L.dilation, r.E);
    }
  }
  return {y, z};
}

// Observes the output ranges of the int8 layers on the simulated network's layer inputs.
class OutputRangeObserver : public LayerInputHook {
 public:
  OutputRangeObserver(const std::vector<LayerInfo>& infos, std::vector<Int8Layer*> layers,
                      LayerInputHook* sim)
      : infos_(infos), layers_(std::move(layers)), sim_(sim) {}
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    torch::Tensor xs = sim_ ? sim_->on_input(layer, x) : x;
    Int8Layer* r = layers_[static_cast<size_t>(layer)];
    if (r) {
      auto [y, z] = int8_layer_float(infos_[static_cast<size_t>(layer)], *r, xs);
      if (r->fuse_relu) y = y.relu();
      r->y_lo = std::min(r->y_lo, y.min().item<double>());
      r->y_hi = std::max(r->y_hi, y.max().item<double>());
      if (z.defined() && z.numel() > 0) {
        r->z_lo = std::min(r->z_lo, z.min().item<double>());
        r->z_hi = std::max(r->z_hi, z.max().item<double>());
      }
    }
    return xs;
  }

 private:
  const std::vector<LayerInfo>& infos_;
  std::vector<Int8Layer*> layers_;
  LayerInputHook* sim_;
};

c10::IValue prepack(const LayerInfo& L, const torch::Tensor& qw,
                    const c10::optional<torch::Tensor>& bias, int64_t groups) {
  const bool conv = L.kind == LayerKind::kConv2d;
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(
      conv ? "quantized::conv2d_prepack" : "quantized::linear_prepack", "");
  torch::jit::Stack stack;
  stack.emplace_back(qw);
  stack.emplace_back(bias ? c10::IValue(*bias) : c10::IValue());
  if (conv) {
    stack.emplace_back(L.stride);
    stack.emplace_back(L.padding);
    stack.emplace_back(L.dilation);
    stack.emplace_back(groups);
  }
  op.callBoxed(&stack);
  return stack.at(0);
}

// Replaces layer node n by quantize -> quantized conv/linear -> dequantize (+ the extra points'
// quantized layer and the in-place segment sum).
void rewrite_int8_layer(Graph& g, Node* n, const LayerInfo& L, const Int8Layer& r) {
  torch::jit::WithInsertPoint guard(n);
  const bool conv = L.kind == LayerKind::kConv2d;
  auto integer = [&](int64_t v) { return constant(g, c10::IValue(v)); };
  auto real = [&](double v) { return constant(g, c10::IValue(v)); };
  Value* x = n->input(0);
  Value* quint8 = constant(g, c10::IValue(c10::ScalarType::QUInt8));
  auto quantize = [&](Value* v) {
    return g.insert(sym("aten::quantize_per_tensor"),
                    {v, real(r.in_scale), integer(r.in_zp), quint8});
  };
  const char* op = conv ? "quantized::conv2d" : "quantized::linear";
  Value* xq = quantize(x);
  auto [ys, yz] = output_qparams(r.y_lo, r.y_hi);
  const char* op1 = r.fuse_relu ? (conv ? "quantized::conv2d_relu" : "quantized::linear_relu") : op;
  Value* yq = g.insert(
      sym(op1), {xq, constant(g, prepack(L, r.q1, r.bias, L.groups)), real(ys), integer(yz)});
  Value* y = g.insert(sym("aten::dequantize"), {yq});
  if (r.fuse_relu) {
    Node* relu = n->output()->uses()[0].user;
    relu->output()->replaceAllUsesWith(y);
    relu->destroy();
  }
  if (r.E > 0) {
    Value* xe = xq;
    if (conv && L.groups > 1)
      xe = quantize(g.insert(sym("aten::index_select"),
                             {x, integer(1), constant(g, torch::tensor(r.gather, torch::kInt64))}));
    auto [zs, zz] = output_qparams(r.z_lo, r.z_hi);
    Value* zq = g.insert(
        sym(op), {xe, constant(g, prepack(L, r.q2, c10::nullopt, conv && L.groups > 1 ? r.E : 1)),
                  real(zs), integer(zz)});
    Value* z = g.insert(sym("aten::dequantize"), {zq});
    y = g.insert(
        sym("aten::index_add_"),
        {y, integer(conv ? 1 : -1), constant(g, torch::tensor(r.extra_channel, torch::kInt64)), z});
  }
  n->output()->replaceAllUsesWith(y);
  n->destroy();
}

}  // namespace

ExportResult export_expanded(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                             const std::string& path, const std::vector<ExportActQuant>& acts,
                             LayerInputHook* sim_hook, const torch::Tensor& check_images) {
  auto original = load_archive(net.path());
  auto frozen =
      freeze_for_ptq(original, net.path(), net.fold_bn(), nullptr, net.equalize_options());
  auto graph = frozen.get_method("forward").graph();
  auto nodes = find_layer_nodes(graph);
  const auto& infos = net.layers();
  MPQ_ASSERT(nodes.size() == infos.size() && layers.size() == infos.size(),
             "export: layer lists differ");
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i < acts.size() && acts[i].enabled) insert_fake_quant(*graph, nodes[i], acts[i]);
    if (!layers[i]) continue;
    const quant::QuantizedLayer& q = *layers[i];
    MPQ_ASSERT(q.c_out == infos[i].c_out && q.d == infos[i].d(), "export: layer shape differs");
    // The bias the network uses now (folded or original, zero if none, corrected if asked).
    torch::Tensor bias = net.bias(static_cast<int>(i));
    record_points(frozen, static_cast<int>(i), q,
                  rewrite_layer(*graph, nodes[i], infos[i], q, bias));
  }
  const bool acts_on =
      std::any_of(acts.begin(), acts.end(), [](const auto& a) { return a.enabled; });
  const double bound = acts_on ? kExportBoundActivations : kExportBound;
  auto r = save_and_check(frozen, net, path, sim_hook, check_images, bound);
  refuse_if_different(r, bound);
  return r;
}

bool int8_eligible(const quant::QuantizedLayer* q, const ExportActQuant& act) {
  return q && q->bits <= 8 && q->channel_bits.empty() && q->ocs_source.empty() && act.enabled &&
         act.qmin >= -127 && act.qmax <= 255 && !(act.qmin < 0 && act.qmax > 127);
}

ExportResult export_int8(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                         const std::string& path, const std::vector<ExportActQuant>& acts,
                         LayerInputHook* sim_hook, const torch::Tensor& calibration_images) {
  select_int8_engine();
  auto original = load_archive(net.path());
  auto frozen =
      freeze_for_ptq(original, net.path(), net.fold_bn(), nullptr, net.equalize_options());
  auto graph = frozen.get_method("forward").graph();
  auto nodes = find_layer_nodes(graph);
  const auto& infos = net.layers();
  MPQ_ASSERT(
      nodes.size() == infos.size() && layers.size() == infos.size() && acts.size() == infos.size(),
      "export: layer lists differ");
  // Plan the integer layers, then observe their output ranges on the calibration images.
  std::vector<std::unique_ptr<Int8Layer>> plans(infos.size());
  std::vector<Int8Layer*> ptrs(infos.size(), nullptr);
  for (size_t i = 0; i < infos.size(); ++i) {
    if (!int8_eligible(layers[i], acts[i])) continue;
    MPQ_ASSERT(layers[i]->c_out == infos[i].c_out && layers[i]->d == infos[i].d(),
               "export: layer shape differs");
    plans[i] = std::make_unique<Int8Layer>(
        plan_int8_layer(infos[i], *layers[i], net.bias(static_cast<int>(i)), acts[i]));
    const auto& uses = nodes[i]->output()->uses();
    plans[i]->fuse_relu =
        plans[i]->E == 0 && uses.size() == 1 &&
        (uses[0].user->kind() == sym("aten::relu") || uses[0].user->kind() == sym("aten::relu_"));
    ptrs[i] = plans[i].get();
  }
  {
    OutputRangeObserver obs(infos, ptrs, sim_hook);
    HookScope scope(&obs);
    torch::NoGradGuard ng;
    for (int64_t b = 0; b < calibration_images.size(0); b += 32)
      net.run(calibration_images.slice(0, b, std::min(b + 32, calibration_images.size(0))));
  }
  int on_int8 = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (plans[i]) {
      rewrite_int8_layer(*graph, nodes[i], infos[i], *plans[i]);
      record_points(frozen, static_cast<int>(i), *layers[i], plans[i]->order);
      ++on_int8;
      continue;
    }
    // Not on integer kernels (kept in FP, more than 8 bits, or an input left in FP): as in the
    // float expanded model.
    if (acts[i].enabled) insert_fake_quant(*graph, nodes[i], acts[i]);
    if (layers[i])
      record_points(
          frozen, static_cast<int>(i), *layers[i],
          rewrite_layer(*graph, nodes[i], infos[i], *layers[i], net.bias(static_cast<int>(i))));
  }
  auto r = save_and_check(frozen, net, path, sim_hook);
  r.int8_layers = on_int8;
  return r;
}

void select_int8_engine() {
  const auto& engines = at::globalContext().supportedQEngines();
  for (auto e : {at::QEngine::ONEDNN, at::QEngine::QNNPACK})
    if (std::find(engines.begin(), engines.end(), e) != engines.end()) {
      at::globalContext().setQEngine(e);
      return;
    }
  throw InputError(
      "--export-int8: this LibTorch has neither the onednn nor the qnnpack quantized engine");
}

}  // namespace mpq::model
