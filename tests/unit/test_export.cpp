// The deployable expanded model equals the simulated (dequantized) model, for conv, depthwise
// conv and linear layers, with varied numbers of points per channel.
#include "mpq/model/expand.h"
#include "mpq/model/network.h"
#include "mpq/model/zoo.h"
#include "mpq/quant/multipoint_layer.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq;

namespace {

std::string make_model(const std::string& arch) {
  torch::manual_seed(11);
  model::ArchConfig cfg;
  cfg.arch = arch;
  cfg.width = 0.5;
  auto m = model::build_model(cfg);
  m.train(true);
  torch::NoGradGuard ng;
  for (int i = 0; i < 3; ++i) m.forward({torch::randn({16, 1, 28, 28})});
  m.eval();
  std::string path = "/tmp/mpq_test_export_" + arch + ".pt";
  m.save(path);
  return path;
}

}  // namespace

TEST_CASE("expanded export equals the simulated model", "[export]") {
  for (std::string arch : {"resnet20", "mobilenetv2"}) {
    auto net = model::Network::load(make_model(arch));
    std::vector<quant::QuantizedLayer> qs;
    std::vector<const quant::QuantizedLayer*> ptrs;
    int kept_fp = 1;  // layer 1 stays in full precision
    for (const auto& L : net.layers()) {
      quant::LayerQuantSpec spec;
      spec.w = net.fp_weight(L.index).data_ptr<float>();
      spec.c_out = L.c_out;
      spec.d = L.d();
      spec.groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
      spec.bits = 3;
      spec.max_points = 3;
      spec.granularity =
          L.index % 2 ? quant::Granularity::kPerLayer : quant::Granularity::kPerChannel;
      auto lc = quant::LayerCandidates::build(spec);
      std::vector<int> points(static_cast<size_t>(L.c_out));
      for (int64_t c = 0; c < L.c_out; ++c)
        points[static_cast<size_t>(c)] = 1 + static_cast<int>((c * 7 + L.index) % 3);
      qs.push_back(lc.finalize(points, std::vector<int32_t>(static_cast<size_t>(L.c_out * 3), -1),
                               quant::Refit::kNone, nullptr, nullptr));
    }
    for (size_t i = 0; i < qs.size(); ++i) {
      ptrs.push_back(static_cast<int>(i) == kept_fp ? nullptr : &qs[i]);
      if (static_cast<int>(i) == kept_fp) continue;
      auto w = torch::empty(net.fp_weight(static_cast<int>(i)).sizes());
      qs[i].dequantize(w.data_ptr<float>());
      net.set_weight(static_cast<int>(i), w);
    }
    std::string out = "/tmp/mpq_test_export_" + arch + "_expanded.pt";
    auto r = model::export_expanded(net, ptrs, out);
    INFO(arch << " max diff " << r.max_abs_diff_vs_simulated << " scale " << r.max_abs_output);
    CHECK(r.max_abs_diff_vs_simulated <= tol::kFloat32Cancel * r.max_abs_output);
    // Independent check on other inputs, from a fresh load of the file.
    auto m = torch::jit::load(out);
    auto x = torch::randn({5, 1, 28, 28}) * 1.5;
    torch::NoGradGuard ng;
    auto a = m.forward({x}).toTensor(), b = net.forward(x);
    CHECK((a - b).abs().max().item<double>() <= tol::kFloat32Cancel * b.abs().max().item<double>());
    // Only standard operators: no mpq:: op, and the segment sum is there.
    std::string graph = m.get_method("forward").graph()->toString();
    CHECK(graph.find("mpq::") == std::string::npos);
    CHECK(graph.find("aten::index_add") != std::string::npos);
    if (arch == "mobilenetv2") CHECK(graph.find("aten::index_select") != std::string::npos);
  }
}
