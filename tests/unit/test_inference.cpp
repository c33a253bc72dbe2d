// The optimized evaluation graph (model/inference.h) against the hooked one, on real
// TorchScript models built in-process.
#include <filesystem>
#include <functional>

#include "helpers.h"
#include "mpq/model/inference.h"
#include "mpq/model/network.h"
#include "mpq/quant/fake_quant.h"
#include "mpq/util/error.h"
#include "torch_catch.h"

namespace fs = std::filesystem;
using namespace mpq;

namespace {

std::map<std::string, int> node_kinds(torch::jit::Module& m) {
  std::map<std::string, int> kinds;
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* b) {
    for (auto* n : b->nodes()) {
      kinds[n->kind().toQualString()]++;
      for (auto* c : n->blocks()) walk(c);
    }
  };
  walk(m.get_method("forward").graph()->block());
  return kinds;
}

// Quantized-looking weights (a coarse grid) so the comparison is not of the FP model only.
void coarsen_weights(model::Network& net) {
  for (const auto& L : net.layers()) {
    const auto w = net.fp_weight(L.index);
    const double step = w.abs().max().item<double>() / 7;
    net.set_weight(L.index, (w / step).round() * step);
  }
}

}  // namespace

TEST_CASE("the optimized graph drops the hooks, prepacks convolutions, and matches the hooked one",
          "[inference]") {
  for (const std::string arch : {"resnet20", "mobilenetv2"}) {
    INFO(arch);
    const auto path = (fs::temp_directory_path() / ("mpq_infer_" + arch + ".pt")).string();
    test::save_zoo_model(arch, path);
    auto net = model::Network::load(path);
    coarsen_weights(net);
    torch::manual_seed(3);
    const auto x = torch::randn({16, 1, 28, 28});
    const auto hooked = net.forward(x);
    {
      // `auto` uses the optimized graph only when it agrees with the hooked one on its probe;
      // otherwise it says why. (LibTorch 1.13's MKLDNN pass computes some models wrongly: this
      // MobileNetV2 of width 0.5, whose 12-channel blocks oneDNN pads, by 0.8% relative on an
      // AVX-512 CPU, so which way it goes depends on the CPU.)
      model::InferenceScope scope(net, model::EvalEngine::kAuto, {});
      INFO(scope.description());
      if (scope.hooked()) {
        CHECK(scope.description().rfind("hooked (", 0) == 0);
      } else {
        CHECK(scope.description() == "optimized");
        const auto out = net.forward(x);
        // The same function with sums in another order (blocked layout): within
        // kEngineTolerance of the output's magnitude, the bound the probe enforces.
        const double scale = hooked.abs().max().item<double>();
        CHECK((out - hooked).abs().max().item<double>() <= model::kEngineTolerance * scale);
      }
      // The hooked module is untouched.
      CHECK(node_kinds(net.module())["mpq::layer_input"] == static_cast<int>(net.layers().size()));
    }
    CHECK_FALSE(net.has_inference_graph());  // the scope cleared it

    // Weight-only: no hook operator left, convolutions prepacked on oneDNN, the whole network in
    // the blocked layout (one conversion back, before the classifier). With every layer input
    // but the first quantized: the one-pass fake quantization before the layers (identical
    // ones on a shared input, ResNet's shortcut, are merged by CSE).
    std::vector<model::InputFakeQuant> fq(net.layers().size());
    for (size_t i = 1; i < fq.size(); ++i) fq[i] = {true, 0.05, -127, 127};
    for (const auto& acts : {std::vector<model::InputFakeQuant>{}, fq}) {
      INFO(acts.size() << " quantizers");
      auto g = model::build_inference_graph(net, acts);
      auto kinds = node_kinds(g);
      CHECK(kinds.count("mpq::layer_input") == 0);
      CHECK(kinds["prim::mkldnn_convolution"] >= 1);
      if (acts.empty()) {
        CHECK(kinds["aten::to_dense"] == 1);
        CHECK(kinds.count("mpq::fake_quantize") == 0);
      } else {
        CHECK(kinds["mpq::fake_quantize"] >= static_cast<int>(net.layers().size()) / 2);
      }
    }

    // Any weight change drops the optimized copy: it would evaluate stale weights.
    net.set_inference_graph(model::build_inference_graph(net, {}));
    REQUIRE(net.has_inference_graph());
    net.set_weight(0, net.fp_weight(0));
    CHECK_FALSE(net.has_inference_graph());
    model::InferenceScope hooked_scope(net, model::EvalEngine::kHooked, {});
    CHECK(hooked_scope.hooked());
    CHECK(hooked_scope.description() == "hooked");
    fs::remove(path);
  }
}

TEST_CASE("fake quantization in the optimized graph is bit-identical to quant::fake_quantize",
          "[inference]") {
  // Two 1x1 convolutions with identity weights and no bias compute x exactly (one product by 1,
  // the rest by 0), so the network's output is the fake quantization at the second layer's
  // input, between two prepacked oneDNN convolutions.
  const int64_t C = 16;
  torch::jit::Module m("IdentityConvs");
  m.register_parameter("w0", torch::eye(C).view({C, C, 1, 1}), false);
  m.register_parameter("w1", torch::eye(C).view({C, C, 1, 1}), false);
  m.define(R"(
    def forward(self, x):
        return torch.conv2d(torch.conv2d(x, self.w0), self.w1)
  )");
  const auto path = (fs::temp_directory_path() / "mpq_infer_identity.pt").string();
  m.save(path);
  model::LoadOptions lo;
  lo.input_shape = {C, 8, 8};
  auto net = model::Network::load(path, lo);
  REQUIRE(net.layers().size() == 2);
  torch::manual_seed(5);
  auto x = torch::randn({4, C, 8, 8}) * 8;
  const double scale = 0.0625;  // exact binary fraction: ties at (k + 1/2) * scale are exact
  auto flat = x.view({-1});
  // Ties (round half to even), grid ends, beyond the grid, beyond the rounding trick's range.
  const float special[] = {0.03125f, -0.03125f, 0.09375f, 7.96875f, -7.96875f, 8.f,
                           -8.f,     1e9f,      -1e9f,    0.f,      -0.f,      7.90625f};
  for (size_t k = 0; k < sizeof special / sizeof *special; ++k)
    flat[static_cast<int64_t>(k)] = special[k];
  for (auto [qmin, qmax] : {std::pair<int64_t, int64_t>{-127, 127}, {0, 255}, {-7, 7}}) {
    INFO("grid [" << qmin << ", " << qmax << "]");
    std::vector<model::InputFakeQuant> fq = {{}, {true, scale, qmin, qmax}};
    auto g = model::build_inference_graph(net, fq);
    CHECK(node_kinds(g)["mpq::fake_quantize"] == 1);
    torch::NoGradGuard ng;
    const auto out = g.forward({x}).toTensor();
    const auto want = quant::fake_quantize(x, scale, qmin, qmax);
    CHECK(
        torch::equal(out.contiguous().view(torch::kInt32), want.contiguous().view(torch::kInt32)));
  }
  // This network passes the probe on any CPU (it is exact): kOptimized evaluates on the copy.
  model::InferenceScope scope(net, model::EvalEngine::kOptimized, {});
  CHECK_FALSE(scope.hooked());
  CHECK(torch::equal(net.forward(x), x));
  fs::remove(path);
}

TEST_CASE("engine names parse, unknown ones are config errors", "[inference]") {
  for (auto e :
       {model::EvalEngine::kAuto, model::EvalEngine::kOptimized, model::EvalEngine::kHooked})
    CHECK(model::parse_eval_engine(model::eval_engine_name(e)) == e);
  CHECK_THROWS_AS(model::parse_eval_engine("fast"), ConfigError);
}
