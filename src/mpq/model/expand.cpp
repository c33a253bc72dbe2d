#include "mpq/model/expand.h"

#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <limits>

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

// Codes of the selected points as a float tensor [n, d].
torch::Tensor codes_rows(const quant::QuantizedLayer& q, const std::vector<int64_t>& points) {
  auto out = torch::empty({static_cast<int64_t>(points.size()), q.d}, torch::kFloat32);
  float* p = out.data_ptr<float>();
  for (size_t r = 0; r < points.size(); ++r) {
    const int8_t* k = q.codes.data() + points[r] * q.d;
    for (int64_t j = 0; j < q.d; ++j)
      p[static_cast<int64_t>(r) * q.d + j] = static_cast<float>(k[j]);
  }
  return out;
}

void rewrite_layer(Graph& g, Node* n, const LayerInfo& L, const quant::QuantizedLayer& q,
                   const torch::Tensor& bias) {
  // Order the points: first point of every channel, then the extra points.
  std::vector<int64_t> first, extra, extra_channel;
  int64_t p = 0;
  for (int64_t c = 0; c < q.c_out; ++c) {
    int np = q.points[static_cast<size_t>(c)];
    first.push_back(p);
    for (int i = 1; i < np; ++i) {
      extra.push_back(p + i);
      extra_channel.push_back(c);
    }
    p += np;
  }
  const int64_t C = q.c_out, E = static_cast<int64_t>(extra.size());
  std::vector<int64_t> order = first;
  order.insert(order.end(), extra.begin(), extra.end());
  auto scales = torch::empty({C + E}, torch::kFloat32);
  for (int64_t i = 0; i < C + E; ++i)
    scales[i] = q.scales[static_cast<size_t>(order[static_cast<size_t>(i)])];

  torch::jit::WithInsertPoint guard(n);
  Value* x = n->input(0);
  Value* z = nullptr;
  const bool conv = L.kind == LayerKind::kConv2d;
  auto ints = [&](const std::vector<int64_t>& v) { return constant(g, c10::IValue(v)); };
  Value* none = g.insertConstant(c10::IValue());
  if (!conv) {
    auto K = codes_rows(q, order);  // [P, Cin]
    z = g.insert(sym("aten::linear"), {x, constant(g, K), none});
  } else if (L.groups == 1) {
    auto K = codes_rows(q, order).view({C + E, L.c_in, L.kh, L.kw});
    z = g.insert(sym("aten::conv2d"), {x, constant(g, K), none, ints(L.stride), ints(L.padding),
                                       ints(L.dilation), constant(g, c10::IValue(int64_t{1}))});
  } else {
    const int64_t cin_g = L.c_in / L.groups, per = C / L.groups;
    auto K1 = codes_rows(q, first).view({C, cin_g, L.kh, L.kw});
    Value* z1 =
        g.insert(sym("aten::conv2d"), {x, constant(g, K1), none, ints(L.stride), ints(L.padding),
                                       ints(L.dilation), constant(g, c10::IValue(L.groups))});
    if (E == 0) {
      z = z1;
    } else {
      std::vector<int64_t> gather;
      for (int64_t c : extra_channel) {
        int64_t grp = c / per;
        for (int64_t j = 0; j < cin_g; ++j) gather.push_back(grp * cin_g + j);
      }
      auto gidx = torch::tensor(gather, torch::kInt64);
      Value* xg = g.insert(sym("aten::index_select"),
                           {x, constant(g, c10::IValue(int64_t{1})), constant(g, gidx)});
      auto K2 = codes_rows(q, extra).view({E, cin_g, L.kh, L.kw});
      Value* z2 =
          g.insert(sym("aten::conv2d"), {xg, constant(g, K2), none, ints(L.stride), ints(L.padding),
                                         ints(L.dilation), constant(g, c10::IValue(E))});
      Value* list = g.insertNode(g.createList(c10::TensorType::get(), {z1, z2}))->output();
      z = g.insert(sym("aten::cat"), {list, constant(g, c10::IValue(int64_t{1}))});
    }
  }
  // Per-output-channel steps, broadcast along the channel dimension.
  Value* s = constant(g, conv ? scales.view({1, C + E, 1, 1}) : scales);
  z = g.insert(sym("aten::mul"), {z, s});
  Value* y = z;
  const int64_t dim = conv ? 1 : -1;
  if (E > 0) {
    Value* dimv = constant(g, c10::IValue(dim));
    Value* zero = constant(g, c10::IValue(int64_t{0}));
    Value* cv = constant(g, c10::IValue(C));
    Value* big = constant(g, c10::IValue(C + E));
    Value* one = constant(g, c10::IValue(int64_t{1}));
    Value* head = g.insert(sym("aten::slice"), {z, dimv, zero, cv, one});
    Value* tail = g.insert(sym("aten::slice"), {z, dimv, cv, big, one});
    auto idx = torch::tensor(extra_channel, torch::kInt64);
    y = g.insert(sym("aten::index_add"), {head, dimv, constant(g, idx), tail});
  }
  Value* b = constant(g, conv ? bias.view({1, C, 1, 1}) : bias);
  y = g.insert(sym("aten::add"), {y, b});
  n->output()->replaceAllUsesWith(y);
  n->destroy();
}

// Every tensor of an output value, in a fixed order (tuple/list order, dict keys sorted).
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

}  // namespace

ExportResult export_expanded(Network& net, const std::vector<const quant::QuantizedLayer*>& layers,
                             const std::string& path, const std::vector<ExportActQuant>& acts,
                             LayerInputHook* sim_hook) {
  auto original = load_archive(net.path());
  auto frozen = freeze_for_ptq(original, net.path(), net.fold_bn());
  auto graph = frozen.get_method("forward").graph();
  auto nodes = find_layer_nodes(graph);
  const auto& infos = net.layers();
  MPQ_ASSERT(nodes.size() == infos.size() && layers.size() == infos.size(),
             "export: layer lists differ");
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i < acts.size() && acts[i].enabled) {
      torch::jit::WithInsertPoint guard(nodes[i]);
      Value* q = graph->insert(
          sym("aten::fake_quantize_per_tensor_affine"),
          {nodes[i]->input(0), constant(*graph, c10::IValue(acts[i].scale)),
           constant(*graph, c10::IValue(int64_t{0})), constant(*graph, c10::IValue(acts[i].qmin)),
           constant(*graph, c10::IValue(acts[i].qmax))});
      nodes[i]->replaceInput(0, q);
    }
    if (!layers[i]) continue;
    const quant::QuantizedLayer& q = *layers[i];
    MPQ_ASSERT(q.c_out == infos[i].c_out && q.d == infos[i].d(), "export: layer shape differs");
    // The bias the network uses now (folded or original, zero if none, corrected if asked).
    torch::Tensor bias = net.bias(static_cast<int>(i));
    rewrite_layer(*graph, nodes[i], infos[i], q, bias);
  }
  graph->lint();

  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    // The source archive's metadata travels with the export (mpq_meta.json extra file).
    frozen.save(tmp, {{"mpq_meta.json", net.meta()}});
  } catch (const c10::Error& e) {
    std::remove(tmp.c_str());
    throw InputError(path + ": cannot write exported model: " + e.what_without_backtrace());
  }
  std::filesystem::rename(tmp, path);

  // Check the saved file against the simulated (dequantized) network.
  ExportResult r;
  r.path = path;
  auto reloaded = torch::jit::load(path);
  reloaded.eval();
  torch::manual_seed(1234);
  const bool list = net.input_kind() == InputKind::kTensorList;
  std::vector<int64_t> shape = {list ? 2 : 64};
  shape.insert(shape.end(), net.input_shape().begin(), net.input_shape().end());
  // Detectors take images in [0, 1]; classifiers get normalized-like values.
  auto x = list ? torch::rand(shape) : torch::randn(shape);
  torch::NoGradGuard ng;
  c10::IValue out_a;
  if (list) {
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < x.size(0); ++i) images.push_back(x[i]);
    out_a = reloaded.forward({c10::IValue(images)});
  } else {
    out_a = reloaded.forward({x});
  }
  c10::IValue out_b;
  {
    HookScope scope(sim_hook);
    out_b = net.run(x);
  }
  // Compare every tensor of the two outputs (logits; or a detector's boxes, scores, labels).
  std::vector<torch::Tensor> ta, tb;
  collect_tensors(out_a, ta);
  collect_tensors(out_b, tb);
  bool same_shapes = ta.size() == tb.size();
  for (size_t i = 0; same_shapes && i < ta.size(); ++i) same_shapes = ta[i].sizes() == tb[i].sizes();
  if (!same_shapes) {
    // A detector whose tiny numeric differences moved a box across the score threshold or NMS.
    r.max_abs_diff_vs_simulated = std::numeric_limits<double>::infinity();
    r.argmax_agreement = 0;
    return r;
  }
  for (size_t i = 0; i < ta.size(); ++i) {
    if (ta[i].numel() == 0) continue;
    auto fa = ta[i].to(torch::kFloat64), fb = tb[i].to(torch::kFloat64);
    r.max_abs_diff_vs_simulated =
        std::max(r.max_abs_diff_vs_simulated, (fa - fb).abs().max().item<double>());
    r.max_abs_output = std::max(r.max_abs_output, fb.abs().max().item<double>());
  }
  if (!list && ta.size() == 1 && ta[0].dim() == 2)
    r.argmax_agreement = ta[0].argmax(1).eq(tb[0].argmax(1)).to(torch::kFloat64).mean().item<double>();
  return r;
}

}  // namespace mpq::model
