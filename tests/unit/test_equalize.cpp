// Cross-layer equalization and bias absorption (model/equalize.h) on TorchScript models built
// here: hand-built pairs whose result is known in closed form, and the zoo architectures.
#include <filesystem>

#include "helpers.h"
#include "mpq/model/network.h"
#include "mpq/util/error.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

namespace fs = std::filesystem;
using namespace mpq;

namespace {

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("mpq_cle_" + name + ".pt")).string();
}

// A scripted module with the given parameters and forward body, saved to `name`.
std::string save_module(const std::string& name,
                        const std::vector<std::pair<std::string, torch::Tensor>>& params,
                        const std::string& forward) {
  torch::jit::Module m("Pair");
  for (const auto& [n, t] : params) m.register_parameter(n, t, false);
  m.define(forward);
  const auto path = temp_path(name);
  m.save(path);
  return path;
}

model::LoadOptions cle(bool absorb = false, model::Relu6Mode relu6 = model::Relu6Mode::kClip,
                       std::vector<int64_t> input_shape = {}) {
  model::LoadOptions o;
  o.input_shape = std::move(input_shape);
  o.equalize.enabled = true;
  o.equalize.absorb_bias = absorb;
  o.equalize.relu6 = relu6;
  return o;
}

torch::Tensor out_range(const torch::Tensor& w) {
  return w.abs().flatten(1).amax(1);
}
torch::Tensor in_range(const torch::Tensor& w) {  // groups == 1
  return w.abs().transpose(0, 1).flatten(1).amax(1);
}

// max |a - b| / max |b|
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace

TEST_CASE("equalization makes both ranges sqrt(r1 r2) and keeps the function", "[equalize]") {
  torch::manual_seed(1);
  // Channel ranges spread over two decades, as in depthwise-heavy networks.
  const auto w1 = torch::randn({6, 3, 3, 3}) * torch::logspace(-1, 1, 6).view({-1, 1, 1, 1});
  const auto w2 = torch::randn({5, 6, 1, 1});
  const auto path = save_module(
      "pair", {{"w1", w1}, {"b1", torch::randn({6})}, {"w2", w2}, {"b2", torch::randn({5})}},
      R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.w1, self.b1, [1, 1], [1, 1]))
    return torch.conv2d(y, self.w2, self.b2)
)");
  auto plain = model::Network::load(path);
  auto eq = model::Network::load(path, cle());
  REQUIRE(eq.equalize_report().pairs.size() == 1);
  CHECK(eq.equalize_report().pairs[0].activation == "relu");
  CHECK(eq.layers()[0].name == plain.layers()[0].name);  // names survive the new constants

  // One pair converges in one pass: both ranges sqrt(r1 r2). Tolerance: the weights are float32
  // (2^-24 relative per rounding; a few roundings), 1e-6 relative.
  const auto expect =
      torch::sqrt(out_range(w1).to(torch::kFloat64) * in_range(w2).to(torch::kFloat64));
  CHECK(rel_diff(out_range(eq.fp_weight(0)).to(torch::kFloat64), expect) < tol::kFloat32);
  CHECK(rel_diff(in_range(eq.fp_weight(1)).to(torch::kFloat64), expect) < tol::kFloat32);
  CHECK(eq.equalize_report().passes <= 2);

  // The same function: relu(x / s) = relu(x) / s. Float32 sums of ~30 terms: 1e-5 relative.
  torch::manual_seed(2);
  const auto x = torch::randn({8, 3, 10, 10});
  CHECK(rel_diff(eq.forward(x), plain.forward(x)) < tol::kFloat32Network);
}

TEST_CASE("ReLU6 pairs: the clip scaled per channel, replaced by ReLU, or skipped", "[equalize]") {
  torch::manual_seed(4);
  const auto we = torch::randn({8, 4, 1, 1}) * torch::logspace(-1, 1, 8).view({-1, 1, 1, 1});
  const auto wd = torch::randn({8, 1, 3, 3}) * torch::logspace(1, -1, 8).view({-1, 1, 1, 1});
  const auto wp = torch::randn({4, 8, 1, 1});
  const auto path = save_module("relu6",
                                {{"we", we},
                                 {"be", torch::randn({8})},
                                 {"wd", wd},
                                 {"bd", torch::randn({8})},
                                 {"wp", wp},
                                 {"bp", torch::randn({4})}},
                                R"(
def forward(self, x):
    h = torch.clamp(torch.conv2d(x, self.we, self.be), 0.0, 6.0)
    h = torch.clamp(torch.conv2d(h, self.wd, self.bd, [1, 1], [1, 1], [1, 1], 8), 0.0, 6.0)
    return torch.conv2d(h, self.wp, self.bp)
)");
  model::LoadOptions four_channels;
  four_channels.input_shape = {4, 12, 12};
  auto plain = model::Network::load(path, four_channels);
  torch::manual_seed(5);
  const auto x = torch::randn({8, 4, 12, 12}) * 3;
  const auto ref = plain.forward(x);

  SECTION("clip: exact function, ranges equal at the fixed point") {
    auto eq = model::Network::load(path, cle(false, model::Relu6Mode::kClip, {4, 12, 12}));
    const auto& r = eq.equalize_report();
    REQUIRE(r.pairs.size() == 2);  // expand -> depthwise, depthwise -> project
    CHECK(r.pairs[0].activation == "clip");
    CHECK(r.pairs[1].activation == "clip");
    CHECK(r.pairs[0].max_scale / r.pairs[0].min_scale > 2);  // it did move something
    // The input makes the clip bind (else the test would not see a wrong clip).
    auto pre = torch::conv2d(x, we, plain.fp_bias(0).view({-1}));
    REQUIRE((pre > 6).any().item<bool>());
    CHECK(rel_diff(eq.forward(x), ref) < tol::kFloat32Network);
    // Fixed point: for each pair, layer 1's output ranges = layer 2's input ranges (depthwise:
    // its rows). Passes stop when no scale moves by 1e-6: 1e-5 relative.
    const auto r_e = out_range(eq.fp_weight(0)), r_d = out_range(eq.fp_weight(1));
    CHECK(rel_diff(r_e, r_d) < tol::kFloat32Network);
    CHECK(rel_diff(r_d, in_range(eq.fp_weight(2))) < tol::kFloat32Network);
  }
  SECTION("replace: ReLU instead of the clip (the FP function changes where the clip bound)") {
    auto eq = model::Network::load(path, cle(false, model::Relu6Mode::kReplace, {4, 12, 12}));
    REQUIRE(eq.equalize_report().pairs.size() == 2);
    CHECK(eq.equalize_report().relu6_replaced == 2);
    CHECK(eq.equalize_report().pairs[0].activation == "relu (was clip)");
    CHECK(rel_diff(eq.forward(x), ref) > 1e-3);
    CHECK(rel_diff(eq.forward(x * 0.01), plain.forward(x * 0.01)) < tol::kFloat32Cancel);
  }
  SECTION("skip: nothing changes") {
    auto eq = model::Network::load(path, cle(false, model::Relu6Mode::kSkip, {4, 12, 12}));
    CHECK(eq.equalize_report().pairs.empty());
    CHECK(eq.equalize_report().relu6_skipped == 2);
    for (int i = 0; i < 3; ++i) CHECK(torch::equal(eq.fp_weight(i), plain.fp_weight(i)));
  }
}

TEST_CASE("bias absorption moves c = max(0, beta - 3 gamma) into the next layer's bias",
          "[equalize]") {
  torch::manual_seed(6);
  const int64_t c = 6;
  const auto w1 = torch::randn({c, 3, 1, 1}) * torch::logspace(-1, 1, c).view({-1, 1, 1, 1});
  const auto w2 = torch::randn({4, c, 1, 1});
  // BatchNorm whose beta sits well above 3 gamma for half the channels: those get c > 0.
  const auto gamma = torch::tensor({0.5, -0.2, 1.0, 0.1, 0.3, 2.0});
  const auto beta = torch::tensor({3.0, 1.0, -1.0, 0.2, 0.5, 1.0});
  const auto path = save_module("absorb",
                                {{"w1", w1},
                                 {"w2", w2},
                                 {"b2", torch::randn({4})},
                                 {"g", gamma},
                                 {"be", beta},
                                 {"mean", torch::randn({c})},
                                 {"var", torch::rand({c}) + 0.5}},
                                R"(
def forward(self, x):
    y = torch.conv2d(x, self.w1)
    y = torch.batch_norm(y, self.g, self.be, self.mean, self.var, False, 0.1, 1e-5, False)
    return torch.conv2d(torch.relu(y), self.w2, self.b2)
)");
  auto off = model::Network::load(path, cle(false));
  auto on = model::Network::load(path, cle(true));
  auto folded = model::Network::load(path);  // BN folded, not equalized
  REQUIRE(on.equalize_report().pairs.size() == 1);
  CHECK(on.equalize_report().pairs[0].bias_absorbed);
  CHECK_FALSE(off.equalize_report().pairs[0].bias_absorbed);

  // Absorption changes biases only.
  CHECK(torch::equal(on.fp_weight(0), off.fp_weight(0)));
  CHECK(torch::equal(on.fp_weight(1), off.fp_weight(1)));
  // The equalization scale s_c = r1 / r1' scales the BN's output distribution: c from beta / s
  // and |gamma| / s.
  const auto s = out_range(folded.fp_weight(0)) / out_range(off.fp_weight(0));
  const auto cc = torch::clamp_min(beta / s - 3 * gamma.abs() / s, 0);
  REQUIRE((cc > 0).sum().item<int64_t>() >= 2);
  REQUIRE((cc == 0).sum().item<int64_t>() >= 2);
  // Float32 biases of magnitude ~10 through a few operations: 1e-5 relative.
  CHECK(rel_diff(on.fp_bias(0), off.fp_bias(0) - cc) < tol::kFloat32Network);
  const auto w2s = off.fp_weight(1).sum({2, 3});
  CHECK(rel_diff(on.fp_bias(1), off.fp_bias(1) + torch::mv(w2s, cc)) < tol::kFloat32Network);

  // Exact where the ReLU's input stays >= c (the 3-sigma premise): inputs near zero put every
  // channel at its beta. 1e-5 relative as above.
  torch::manual_seed(7);
  const auto x = torch::randn({4, 3, 5, 5}) * 1e-3;
  CHECK(rel_diff(on.forward(x), folded.forward(x)) < tol::kFloat32Network);
}

TEST_CASE("equalization keeps the zoo models' function and needs BN folding", "[equalize]") {
  for (const std::string arch : {"resnet20", "mobilenetv2"}) {
    INFO(arch);
    const auto path = temp_path(arch);
    test::save_zoo_model(arch, path);
    auto plain = model::Network::load(path);
    auto eq = model::Network::load(path, cle());
    const auto& r = eq.equalize_report();
    // ResNet-20: conv1 -> conv2 of each of the 9 blocks (and nothing across residual adds);
    // MobileNetV2: stem -> first depthwise, then expand -> depthwise -> project in every block.
    if (arch == "resnet20") {
      CHECK(r.pairs.size() == 9);
    } else {
      CHECK(r.pairs.size() >= 10);
    }
    for (const auto& p : r.pairs) CHECK(p.second > p.first);
    torch::manual_seed(8);
    const auto x = torch::randn({16, 1, 28, 28});
    // Without absorption the function is unchanged up to float32 rounding over ~20 layers:
    // 1e-4 relative (the evaluation engines' bound, measured here ~1e-6).
    CHECK(rel_diff(eq.forward(x), plain.forward(x)) < tol::kFloat32Cancel);
    model::LoadOptions no_fold = cle();
    no_fold.fold_bn = false;
    CHECK_THROWS_AS(model::Network::load(path, no_fold), ConfigError);
  }
}
