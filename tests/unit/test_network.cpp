// Network preparation on real TorchScript modules built in-process: BN folding equivalence,
// weight swapping, the layer-input hook, and bad archives.
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "mpq/model/network.h"
#include "mpq/model/zoo.h"
#include "mpq/util/error.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

namespace fs = std::filesystem;
using mpq::model::Network;

namespace {

std::string save_model(const std::string& arch, const std::string& path) {
  return mpq::test::save_zoo_model(arch, path);
}

class Recorder : public mpq::model::LayerInputHook {
 public:
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    seen.push_back(layer);
    shapes.push_back(x.sizes().vec());
    return x;
  }
  std::vector<int> seen;
  std::vector<std::vector<int64_t>> shapes;
};

class Zeroer : public mpq::model::LayerInputHook {
 public:
  int target = -1;
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    return layer == target ? torch::zeros_like(x) : x;
  }
};

}  // namespace

TEST_CASE("BN folding leaves the outputs unchanged", "[model]") {
  for (std::string arch : {"resnet20", "mobilenetv2"}) {
    std::string path = save_model(arch, "/tmp/mpq_test_" + arch + ".pt");
    auto original = torch::jit::load(path);
    original.eval();
    auto x = torch::randn({8, 1, 28, 28});
    torch::NoGradGuard ng;
    auto ref = original.forward({x}).toTensor();
    mpq::model::LoadOptions fold, nofold;
    nofold.fold_bn = false;
    auto folded = Network::load(path, fold);
    auto unfolded = Network::load(path, nofold);
    CHECK(folded.bn_before_fold() > 0);
    CHECK(folded.bn_after_fold() == 0);
    CHECK(unfolded.bn_after_fold() == unfolded.bn_before_fold());
    double scale = ref.abs().max().item<double>();
    INFO(arch);
    CHECK((folded.forward(x) - ref).abs().max().item<double>() <= tol::kFloat32Network * scale);
    CHECK((unfolded.forward(x) - ref).abs().max().item<double>() <= tol::kFloat32 * scale);
  }
}

TEST_CASE("layers are found in execution order with shapes and MACs", "[model]") {
  std::string path = save_model("mobilenetv2", "/tmp/mpq_test_layers.pt");
  auto net = Network::load(path);
  const auto& layers = net.layers();
  REQUIRE(layers.size() == 23);
  CHECK(layers.front().name == "stem_conv");
  CHECK(layers.back().name == "fc");
  CHECK(layers.back().kind == mpq::model::LayerKind::kLinear);
  int depthwise = 0;
  for (const auto& L : layers) {
    CHECK(L.calls == 1);
    CHECK(L.macs > 0);
    if (L.depthwise()) {
      ++depthwise;
      CHECK(L.d() == 9);
    }
  }
  CHECK(depthwise == 7);
  // stem: 8 output channels (width 0.5), 1x3x3 kernel, stride 2 on 28x28 -> 14x14 outputs
  CHECK(layers[0].macs == 8 * 9 * 14 * 14);
  CHECK(layers[0].output_shape == std::vector<int64_t>({1, 8, 14, 14}));
}

TEST_CASE("batches are bounded by the largest layer activation", "[model]") {
  auto net = Network::load(save_model("resnet20", "/tmp/mpq_test_batch.pt"));
  // Width 0.5 and a stride-2 stem: stage 1 has 8 channels at 14x14 = 1568 floats, more than the
  // 1x28x28 input (784) and stage 2's 16x7x7 (784): the largest layer input or output.
  CHECK(net.max_activation_bytes() == 8 * 14 * 14 * 4);
  CHECK(net.bounded_batch(500, int64_t{1} << 20) == (int64_t{1} << 20) / (8 * 14 * 14 * 4));
  CHECK(net.bounded_batch(10, int64_t{1} << 20) == 10);  // already within the bound
  CHECK(net.bounded_batch(500, 0) == 500);               // 0: no bound
  CHECK(net.bounded_batch(500, 1) == 1);                 // never below one image
}

TEST_CASE("the layer-input hook sees every layer once per forward, in order", "[model]") {
  auto net = Network::load(save_model("resnet20", "/tmp/mpq_test_hook.pt"));
  Recorder rec;
  {
    mpq::model::HookScope scope(&rec);
    net.forward(torch::randn({2, 1, 28, 28}));
  }
  REQUIRE(rec.seen.size() == net.layers().size());
  for (size_t i = 0; i < rec.seen.size(); ++i) {
    CHECK(rec.seen[i] == static_cast<int>(i));
    CHECK(rec.shapes[i][0] == 2);
  }
  // Outside the scope the hook is gone.
  rec.seen.clear();
  net.forward(torch::randn({1, 1, 28, 28}));
  CHECK(rec.seen.empty());
}

TEST_CASE("a hook can replace a layer's input", "[model]") {
  auto net = Network::load(save_model("resnet20", "/tmp/mpq_test_hook2.pt"));
  auto x = torch::randn({4, 1, 28, 28});
  auto ref = net.forward(x);
  Zeroer z;
  z.target = static_cast<int>(net.layers().size()) - 1;  // the classifier sees zeros
  mpq::model::HookScope scope(&z);
  auto out = net.forward(x);
  auto bias = net.bias(z.target);
  CHECK((out - bias.view({1, -1})).abs().max().item<double>() < tol::kFloat32);
  CHECK((out - ref).abs().max().item<double>() > 1e-3);
}

TEST_CASE("weights and biases can be swapped and restored", "[model]") {
  auto net = Network::load(save_model("resnet20", "/tmp/mpq_test_swap.pt"));
  auto x = torch::randn({4, 1, 28, 28});
  auto ref = net.forward(x);
  int last = static_cast<int>(net.layers().size()) - 1;
  net.set_weight(last, torch::zeros_like(net.fp_weight(last)));
  auto out = net.forward(x);
  CHECK((out - net.fp_bias(last).view({1, -1})).abs().max().item<double>() < tol::kFloat32);
  net.restore_fp();
  CHECK((net.forward(x) - ref).abs().max().item<double>() == 0.0);
}

TEST_CASE("bad model files give an InputError naming the file", "[model]") {
  auto message = [](const std::string& path) {
    try {
      Network::load(path);
    } catch (const mpq::InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message("/nonexistent/model.pt").find("/nonexistent/model.pt: cannot open model") == 0);
  std::string garbage = "/tmp/mpq_test_garbage.pt";
  {
    std::ofstream o(garbage);
    o << "this is not a zip archive";
  }
  CHECK(message(garbage).find(garbage + ": not a TorchScript archive") == 0);
  std::string truncated = "/tmp/mpq_test_truncated.pt";
  save_model("resnet20", truncated);
  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  CHECK(message(truncated).find(truncated + ": ") == 0);
  CHECK(message("/tmp").find("/tmp: is a directory") == 0);
}
