// Layer-level multipoint: statistics, candidate tables, finalize, and the collection of Σ from a
// real network against a direct reference.
#include <cmath>
#include <map>

#include "helpers.h"
#include "mpq/model/network.h"
#include "mpq/model/zoo.h"
#include "mpq/ptq/calibrate.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/multipoint_layer.h"
#include "mpq/quant/output_error.h"
#include "reference.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq::quant;

namespace {

// Σ from explicit input rows X [n, d]: X^T X / n, per group of 1.
SecondMoment moment_from_rows(const torch::Tensor& x) {
  SecondMoment s;
  s.groups = 1;
  s.d = x.size(1);
  s.data = (x.t().mm(x) / static_cast<double>(x.size(0))).unsqueeze(0).contiguous();
  s.rows_seen = x.size(0);
  return s;
}

std::vector<float> gaussian_weights(int64_t c, int64_t d, unsigned seed) {
  auto v = mpq::test::gaussian(static_cast<size_t>(c * d), seed);
  return mpq::test::to_float(v);
}

}  // namespace

TEST_CASE("output error equals the mean squared output difference", "[output_error]") {
  torch::manual_seed(0);
  auto x = torch::randn({500, 12});
  auto s = moment_from_rows(x);
  auto delta = torch::randn({3, 12});
  auto e = output_errors(s, 0, delta);
  auto direct = x.mm(delta.t()).pow(2).mean(0);
  for (int i = 0; i < 3; ++i)
    CHECK(e[static_cast<size_t>(i)] ==
          Approx(direct[i].item<double>()).epsilon(tol::kFloat32Cancel));
  // The sampled-rows representation gives the same numbers when it holds all rows.
  SecondMoment r;
  r.groups = 1;
  r.d = 12;
  r.sampled_rows = true;
  r.data = x.unsqueeze(0).contiguous();
  auto e2 = output_errors(r, 0, delta);
  for (int i = 0; i < 3; ++i)
    CHECK(e2[static_cast<size_t>(i)] ==
          Approx(e[static_cast<size_t>(i)]).epsilon(tol::kFloat32Cancel));
  CHECK(r.diagonal()[0][5].item<double>() ==
        Approx(s.data[0][5][5].item<double>()).epsilon(tol::kFloat32Cancel));
}

TEST_CASE("candidate tables hold the greedy errors, and they fall with every point",
          "[multipoint_layer]") {
  auto w = gaussian_weights(6, 20, 3);
  torch::manual_seed(1);
  auto s = moment_from_rows(torch::randn({300, 20}));
  LayerQuantSpec spec;
  spec.w = w.data();
  spec.c_out = 6;
  spec.d = 20;
  spec.bits = 3;
  spec.max_points = 4;
  spec.stats = &s;
  auto lc = LayerCandidates::build(spec);
  const auto& t = lc.tables();
  for (int64_t c = 0; c < 6; ++c) {
    GreedyChannel ref(w.data() + c * 20, 20);
    PointSearch ps;
    ps.bits = 3;
    for (int k = 0; k < 4; ++k) {
      ref.add_point(ps);
      CHECK(t.weight_error[static_cast<size_t>(c * 4 + k)] ==
            Approx(ref.residual_sq_norm()).epsilon(tol::kFloat64));
      if (k > 0)
        CHECK(t.weight_error[static_cast<size_t>(c * 4 + k)] <=
              t.weight_error[static_cast<size_t>(c * 4 + k - 1)]);
    }
    CHECK(t.output_error[static_cast<size_t>(c * 4)] < t.output_energy[static_cast<size_t>(c)]);
  }
}

TEST_CASE("per-layer granularity shares the first step across the layer", "[multipoint_layer]") {
  auto w = gaussian_weights(5, 9, 4);
  LayerQuantSpec spec;
  spec.w = w.data();
  spec.c_out = 5;
  spec.d = 9;
  spec.bits = 4;
  spec.max_points = 2;
  spec.granularity = Granularity::kPerLayer;
  auto lc = LayerCandidates::build(spec);
  std::vector<int> points = {2, 1, 2, 1, 1};
  std::vector<int32_t> order(10, -1);
  auto q = lc.finalize(points, order, Refit::kWeight, nullptr, nullptr);
  REQUIRE(q.total_points() == 7);
  // First points of channels 0..4 sit at offsets 0, 2, 3, 5, 6.
  for (int64_t p : {2, 3, 5, 6}) CHECK(q.scales[static_cast<size_t>(p)] == q.scales[0]);
  // The shared step is the MSE-optimal step of the whole tensor.
  std::vector<double> all(w.begin(), w.end());
  double expect = mpq::test::ref_min_f(all, {}, max_level(4));
  double got = 0;
  {
    LayerQuantSpec one = spec;
    one.max_points = 1;
    auto l1 = LayerCandidates::build(one);
    for (int64_t c = 0; c < 5; ++c) got += l1.tables().weight_error[static_cast<size_t>(c)];
  }
  CHECK(got == Approx(expect).epsilon(tol::kFloat32));
}

TEST_CASE("finalize keeps the allocated points and refit never hurts", "[multipoint_layer]") {
  auto w = gaussian_weights(8, 30, 5);
  torch::manual_seed(2);
  auto s = moment_from_rows(torch::randn({200, 30}) * torch::linspace(0.1, 3.0, 30));
  for (Refit refit : {Refit::kNone, Refit::kWeight, Refit::kOutput}) {
    LayerQuantSpec spec;
    spec.w = w.data();
    spec.c_out = 8;
    spec.d = 30;
    spec.bits = 2;
    spec.max_points = 3;
    spec.stats = &s;
    auto lc = LayerCandidates::build(spec);
    std::vector<int> points = {1, 2, 3, 1, 2, 3, 1, 1};
    double we = 0, oe = 0;
    auto q = lc.finalize(points, std::vector<int32_t>(24, -1), refit, &we, &oe);
    CHECK(q.points == std::vector<int32_t>(points.begin(), points.end()));
    double greedy_we = 0, greedy_oe = 0;
    for (int64_t c = 0; c < 8; ++c) {
      greedy_we +=
          lc.tables().weight_error[static_cast<size_t>(c * 3 + points[static_cast<size_t>(c)] - 1)];
      greedy_oe +=
          lc.tables().output_error[static_cast<size_t>(c * 3 + points[static_cast<size_t>(c)] - 1)];
    }
    if (refit == Refit::kNone) {
      CHECK(we == Approx(greedy_we).epsilon(tol::kFloat64Iterative));
      CHECK(oe == Approx(greedy_oe).epsilon(tol::kFloat32Cancel));
    } else if (refit == Refit::kWeight) {
      CHECK(we <= greedy_we * (1 + 1e-9));
    } else {
      CHECK(oe <= greedy_oe * (1 + 1e-4));
    }
    CHECK(layer_weight_sq_error(w.data(), q) == Approx(we).epsilon(tol::kFloat32));
  }
}

TEST_CASE("calibration statistics equal a direct im2col reference, grouped and linear layers too",
          "[calibrate]") {
  torch::manual_seed(7);
  mpq::model::ArchConfig cfg;
  cfg.arch = "mobilenetv2";
  cfg.width = 0.25;
  auto m = mpq::model::build_model(cfg);
  m.eval();
  m.save("/tmp/mpq_test_calib.pt");
  auto net = mpq::model::Network::load("/tmp/mpq_test_calib.pt");
  mpq::test::RandomImages data(10);
  // Layers: stem (dense conv), a depthwise conv, the classifier.
  int dw = -1;
  for (const auto& L : net.layers())
    if (L.depthwise() && dw < 0) dw = L.index;
  int last = static_cast<int>(net.layers().size()) - 1;
  std::vector<int> layers = {0, dw, last};
  mpq::ptq::CalibrationOptions o;
  o.batch_size = 4;  // several batches
  auto stats = mpq::ptq::collect_statistics(net, data, {0, 2, 3, 5, 7, 9}, layers, o);
  // Unfolding one image at a time (as 224x224 inputs are) gives the same statistics.
  o.max_patch_bytes = 1;
  auto chunked = mpq::ptq::collect_statistics(net, data, {0, 2, 3, 5, 7, 9}, layers, o);
  for (size_t i = 0; i < layers.size(); ++i) {
    CHECK(chunked[i].rows_seen == stats[i].rows_seen);
    CHECK(torch::allclose(chunked[i].data, stats[i].data, 1e-5, 1e-6));
  }
  // Reference: record the layer inputs, unfold with torch's unfold, average x x^T per group.
  struct Rec : mpq::model::LayerInputHook {
    std::map<int, std::vector<torch::Tensor>> in;
    torch::Tensor on_input(int l, const torch::Tensor& x) override {
      in[l].push_back(x.clone());
      return x;
    }
  } rec;
  {
    mpq::model::HookScope scope(&rec);
    torch::Tensor x = mpq::test::images_of(data, std::vector<int64_t>{0, 2, 3, 5, 7, 9});
    net.forward(x);
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& L = net.layers()[static_cast<size_t>(layers[i])];
    auto x = rec.in[layers[i]][0].to(torch::kFloat64);
    std::vector<torch::Tensor> sig;
    if (L.kind == mpq::model::LayerKind::kLinear) {
      sig.push_back(x.t().mm(x) / x.size(0));
    } else {
      int64_t cin_g = L.c_in / L.groups;
      for (int64_t g = 0; g < L.groups; ++g) {
        // Reference im2col from padding and strided slices: column index c*kh*kw + ky*kw + kx,
        // the flattening of a [cin_g, kh, kw] weight.
        auto xg =
            torch::constant_pad_nd(x.narrow(1, g * cin_g, cin_g),
                                   {L.padding[1], L.padding[1], L.padding[0], L.padding[0]}, 0.0);
        int64_t ho = (xg.size(2) - L.dilation[0] * (L.kh - 1) - 1) / L.stride[0] + 1;
        int64_t wo = (xg.size(3) - L.dilation[1] * (L.kw - 1) - 1) / L.stride[1] + 1;
        std::vector<torch::Tensor> taps;
        for (int64_t ky = 0; ky < L.kh; ++ky)
          for (int64_t kx = 0; kx < L.kw; ++kx)
            taps.push_back(xg.slice(2, ky * L.dilation[0],
                                    ky * L.dilation[0] + L.stride[0] * (ho - 1) + 1, L.stride[0])
                               .slice(3, kx * L.dilation[1],
                                      kx * L.dilation[1] + L.stride[1] * (wo - 1) + 1,
                                      L.stride[1]));
        auto patches = torch::stack(taps, 2);  // [N, cin_g, kh*kw, ho, wo]
        auto rows = patches.permute({0, 3, 4, 1, 2}).reshape({-1, cin_g * L.kh * L.kw});
        sig.push_back(rows.t().mm(rows) / rows.size(0));
      }
    }
    REQUIRE(stats[i].groups == static_cast<int64_t>(sig.size()));
    for (size_t g = 0; g < sig.size(); ++g) {
      double err = (stats[i].data[static_cast<int64_t>(g)].to(torch::kFloat64) - sig[g])
                       .abs()
                       .max()
                       .item<double>();
      double scale = sig[g].abs().max().item<double>();
      INFO("layer " << L.name << " group " << g);
      CHECK(err <= tol::kFloat32Network * scale + 1e-12);
    }
  }
  // A tiny memory bound switches to sampled rows with the same d and a bounded size.
  o.max_bytes_per_layer = 4 * 9 * 5;  // below the 9x9 Σ of the stem (324 bytes): 5 rows of d = 9
  auto small = mpq::ptq::collect_statistics(net, data, {0, 2, 3, 5, 7, 9}, {0}, o);
  CHECK(small[0].sampled_rows);
  CHECK(small[0].data.size(1) == 5);
  CHECK(small[0].rows_seen == stats[0].rows_seen);
}
