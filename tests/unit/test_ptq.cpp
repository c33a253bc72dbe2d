// Network-level PTQ pieces on real TorchScript models: activation quantizers, bias correction,
// export with activation quantization.
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "helpers.h"
#include "mpq/model/expand.h"
#include "mpq/model/network.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/bias_correction.h"
#include "mpq/ptq/calibrate.h"
#include "mpq/ptq/quantize.h"
#include "mpq/ptq/reconstruct.h"
#include "mpq/ptq/stats_cache.h"
#include "mpq/quant/fake_quant.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq;

namespace {

ptq::CalibrationContext context(const data::Dataset& data, int64_t n) {
  ptq::CalibrationContext cc;
  cc.data = &data;
  cc.indices.resize(static_cast<size_t>(n));
  std::iota(cc.indices.begin(), cc.indices.end(), 0);
  cc.options.batch_size = 8;
  return cc;
}

// Records every layer input after the inner hook.
class After : public model::LayerInputHook {
 public:
  explicit After(model::LayerInputHook* inner) : inner_(inner) {}
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    auto y = inner_->on_input(layer, x);
    seen[layer] = y.clone();
    return y;
  }
  std::map<int, torch::Tensor> seen;

 private:
  model::LayerInputHook* inner_;
};

}  // namespace

TEST_CASE("activation quantizers: unsigned after ReLU, values on the grid, max range",
          "[activations]") {
  auto net = model::Network::load(test::save_zoo_model("resnet20", "/tmp/mpq_test_act.pt"));
  test::RandomImages data(24);
  auto cc = context(data, 24);
  ptq::ActivationConfig ac;
  ac.bits = 4;
  ac.range = ptq::ActRange::kMax;
  std::vector<bool> all(net.layers().size(), true);
  auto params = ptq::calibrate_activations(net, ac, cc, all);
  REQUIRE(params.size() == net.layers().size());
  CHECK_FALSE(params[0].is_unsigned);  // the stem sees the normalized image
  CHECK(params[0].qmin == -7);
  CHECK(params[0].qmax == 7);
  CHECK(params[1].is_unsigned);  // after stem BN + ReLU
  CHECK(params[1].qmin == 0);
  CHECK(params[1].qmax == 15);
  for (const auto& p : params) {
    CHECK(p.enabled);
    double max_abs = std::max(std::fabs(p.observed_min), std::fabs(p.observed_max));
    CHECK(p.scale == Approx(max_abs / static_cast<double>(p.qmax)));
  }
  ptq::ActivationQuantizer aq(params);
  After rec(&aq);
  {
    model::HookScope scope(&rec);
    torch::Tensor x = mpq::test::images_of(data, std::vector<int64_t>{0, 1, 2});
    net.forward(x);
  }
  for (const auto& [layer, v] : rec.seen) {
    const auto& p = params[static_cast<size_t>(layer)];
    auto k = v / p.scale;
    // Activations divided by their float32 step land within float32 rounding of an integer
    // (values up to 2^7 steps: 2^7 * 2^-24 ≈ 1e-5); 1e-3 leaves room for any step size.
    constexpr double kOnGrid = 1e-3;
    CHECK((k - k.round()).abs().max().item<double>() < kOnGrid);
    CHECK(k.min().item<double>() >= p.qmin - kOnGrid);
    CHECK(k.max().item<double>() <= p.qmax + kOnGrid);
  }
  // "fp" for the first layer's input leaves it unquantized; 8bit widens the last.
  ac.first_layer = ptq::LayerRule::kFp;
  ac.last_layer = ptq::LayerRule::k8Bit;
  auto p2 = ptq::calibrate_activations(net, ac, cc, all);
  CHECK_FALSE(p2.front().enabled);
  CHECK(p2.back().bits == 8);
  // Percentile and MSE ranges clip inside the max range.
  for (std::string range : {"percentile", "mse", "aciq_laplace", "aciq_gaussian"}) {
    ac = ptq::ActivationConfig{};
    ac.bits = 4;
    ac.range = ptq::parse_act_range(range);
    ac.percentile = 99.0;
    auto p3 = ptq::calibrate_activations(net, ac, cc, all);
    for (size_t i = 0; i < p3.size(); ++i) CHECK(p3[i].scale <= params[i].scale * (1 + 1e-9));
  }
}

TEST_CASE("fake_quantize is bit-identical to torch::fake_quantize_per_tensor_affine",
          "[activations][act_quant]") {
  torch::manual_seed(7);
  // Ordinary values, far out of range, exact ties k + 0.5 on the grid (both signs), zeros of both
  // signs, denormals, and a non-contiguous view. Not values with |x / scale| >= 2^63: PyTorch's
  // kernel overflows its int64 cast there and returns qmin even for +x; ours clamps to qmax.
  const double scales[] = {0.0371, 1.0, 1.0 / 3.0, 2.5e-4, 7.0};
  for (double scale : scales) {
    for (auto [qmin, qmax] : {std::pair<int64_t, int64_t>{-7, 7},
                              {0, 15},
                              {-127, 127},
                              {0, 255},
                              {-1, 1},
                              {-32767, 32767}}) {
      torch::Tensor normal = torch::randn({4096}) * (scale * static_cast<double>(qmax) * 0.7);
      torch::Tensor wide = torch::randn({1024}) * (scale * static_cast<double>(qmax) * 40);
      torch::Tensor ties =
          (torch::arange(-300, 300).to(torch::kFloat32) + 0.5f) * static_cast<float>(scale);
      torch::Tensor special = torch::tensor({0.0f, -0.0f, 1e-40f, -1e-40f, 3e9f, -3e9f});
      torch::Tensor x = torch::cat({normal, wide, ties, special});
      torch::Tensor want = torch::fake_quantize_per_tensor_affine(x, scale, 0, qmin, qmax);
      torch::Tensor got = quant::fake_quantize(x, scale, qmin, qmax);
      REQUIRE(got.sizes() == want.sizes());
      // Bitwise: the same float32 patterns (so +0 and -0 differ), not just equal values.
      CHECK(torch::equal(got.view(torch::kInt32), want.view(torch::kInt32)));
      torch::Tensor strided = x.view({-1, 2}).t();
      CHECK(torch::equal(quant::fake_quantize(strided, scale, qmin, qmax).view(torch::kInt32),
                         torch::fake_quantize_per_tensor_affine(strided, scale, 0, qmin, qmax)
                             .contiguous()
                             .view(torch::kInt32)));
    }
  }
}

TEST_CASE("a calibration pass stops after the observed layers and sees the same inputs",
          "[calibration]") {
  auto net = model::Network::load(test::save_zoo_model("resnet20", "/tmp/mpq_test_stop.pt"));
  test::RandomImages data(20);
  auto cc = context(data, 20);  // batches of 8, 8 and 4
  // Records every input of every layer, in order, per batch.
  struct Log : model::LayerInputHook {
    std::vector<std::pair<int, torch::Tensor>> calls;
    torch::Tensor on_input(int layer, const torch::Tensor& x) override {
      calls.emplace_back(layer, x.clone());
      return x;
    }
  };
  const int n_layers = static_cast<int>(net.layers().size());
  Log full;
  ptq::run_calibration_batches(net, data, cc.indices, cc.options, &full);
  REQUIRE(full.calls.size() == static_cast<size_t>(3 * n_layers));
  for (int last : {0, 5, n_layers / 2, n_layers - 1}) {
    std::vector<bool> observed(static_cast<size_t>(n_layers), false);
    observed[static_cast<size_t>(last)] = true;
    Log part;
    int batches = 0;
    ptq::run_calibration_batches(
        net, data, cc.indices, cc.options, &part, [&](int64_t) { ++batches; }, &observed);
    CHECK(batches == 3);
    // Each batch ran layers 0..last (in order, the same tensors) and stopped there.
    REQUIRE(part.calls.size() == static_cast<size_t>(3 * (last + 1)));
    for (int b = 0; b < 3; ++b)
      for (int i = 0; i <= last; ++i) {
        const auto& got = part.calls[static_cast<size_t>(b * (last + 1) + i)];
        const auto& want = full.calls[static_cast<size_t>(b * n_layers + i)];
        CHECK(got.first == want.first);
        CHECK(torch::equal(got.second, want.second));
      }
  }
  // An error of the hook itself is not mistaken for the stop.
  struct Throws : model::LayerInputHook {
    torch::Tensor on_input(int layer, const torch::Tensor& x) override {
      if (layer == 2) throw std::runtime_error("hook failed");
      return x;
    }
  } throws;
  std::vector<bool> observed(static_cast<size_t>(n_layers), false);
  observed[5] = true;
  CHECK_THROWS(
      ptq::run_calibration_batches(net, data, cc.indices, cc.options, &throws, {}, &observed));
  // The network still runs normally afterwards.
  Log again;
  ptq::run_calibration_batches(net, data, cc.indices, cc.options, &again);
  CHECK(again.calls.size() == full.calls.size());
}

TEST_CASE("bias correction restores each layer's mean output", "[bias_correction]") {
  auto net = model::Network::load(test::save_zoo_model("mobilenetv2", "/tmp/mpq_test_bc.pt"));
  test::RandomImages data(32, 1);
  auto cc = context(data, 32);
  ptq::WeightConfig w;
  w.method = ptq::WeightMethod::kRtn;
  w.bits = 2;  // coarse: large mean shifts to correct
  auto nq = ptq::quantize_network(net, w, cc);
  std::vector<bool> all(net.layers().size(), true);
  auto stats = ptq::correct_biases(net, cc, all, nullptr);
  // Mean input rows of every layer in the FP and in the corrected network.
  struct Means : model::LayerInputHook {
    const std::vector<model::LayerInfo>* infos;
    std::map<int, torch::Tensor> sum;
    std::map<int, int64_t> rows;
    torch::Tensor on_input(int l, const torch::Tensor& x) override {
      const auto& L = (*infos)[static_cast<size_t>(l)];
      torch::Tensor r;
      if (L.kind == model::LayerKind::kConv2d) {
        auto c = at::im2col(x, {L.kh, L.kw}, {L.dilation[0], L.dilation[1]},
                            {L.padding[0], L.padding[1]}, {L.stride[0], L.stride[1]});
        r = c.permute({0, 2, 1}).reshape({-1, c.size(1)});
      } else {
        r = x.reshape({-1, L.c_in});
      }
      auto s = r.to(torch::kFloat64).sum(0);
      sum[l] = sum.count(l) ? sum[l] + s : s;
      rows[l] += r.size(0);
      return x;
    }
  };
  auto measure = [&](Means& m) {
    m.infos = &net.layers();
    model::HookScope scope(&m);
    torch::Tensor x = mpq::test::images_of(data, cc.indices);
    net.forward(x);
  };
  Means q;
  measure(q);
  std::vector<torch::Tensor> qw, qb;
  for (const auto& L : net.layers()) {
    qw.push_back(net.weight(L.index).clone());
    qb.push_back(net.bias(L.index).clone());
  }
  net.restore_fp();
  Means fp;
  measure(fp);
  double worst = 0;
  for (const auto& L : net.layers()) {
    int64_t G = L.kind == model::LayerKind::kConv2d ? L.groups : 1, per = L.c_out / G;
    auto mq = (q.sum[L.index] / static_cast<double>(q.rows[L.index])).view({G, L.d(), 1});
    auto mf = (fp.sum[L.index] / static_cast<double>(fp.rows[L.index])).view({G, L.d(), 1});
    auto wq = qw[static_cast<size_t>(L.index)].reshape({G, per, L.d()}).to(torch::kFloat64);
    auto wf = net.fp_weight(L.index).reshape({G, per, L.d()}).to(torch::kFloat64);
    auto out_q = torch::bmm(wq, mq).reshape({L.c_out}) +
                 qb[static_cast<size_t>(L.index)].to(torch::kFloat64);
    auto out_f = torch::bmm(wf, mf).reshape({L.c_out}) + net.fp_bias(L.index).to(torch::kFloat64);
    double scale = out_f.abs().max().item<double>() + 1e-6;
    worst = std::max(worst, (out_q - out_f).abs().max().item<double>() / scale);
    CHECK(stats[static_cast<size_t>(L.index)].contains("bias_shift_mean_abs"));
  }
  CHECK(worst < tol::kFloat32Cancel);
}

TEST_CASE("export with activation quantizers agrees with the simulation", "[export][activations]") {
  auto net = model::Network::load(test::save_zoo_model("resnet20", "/tmp/mpq_test_export_act.pt"));
  test::RandomImages data(32, 2);
  auto cc = context(data, 32);
  ptq::WeightConfig w;
  w.method = ptq::WeightMethod::kMultipoint;
  w.bits = 4;
  auto nq = ptq::quantize_network(net, w, cc);
  ptq::ActivationConfig ac;
  ac.bits = 8;
  std::vector<bool> all(net.layers().size(), true);
  std::vector<torch::Tensor> qw;
  for (const auto& L : net.layers()) qw.push_back(net.weight(L.index).clone());
  for (const auto& L : net.layers()) net.set_weight(L.index, net.fp_weight(L.index));
  auto params = ptq::calibrate_activations(net, ac, cc, all);
  for (const auto& L : net.layers()) net.set_weight(L.index, qw[static_cast<size_t>(L.index)]);
  ptq::ActivationQuantizer aq(params);
  std::vector<const quant::QuantizedLayer*> qs;
  std::vector<model::ExportActQuant> ea;
  for (size_t i = 0; i < nq.layers.size(); ++i) {
    qs.push_back(&nq.layers[i].q);
    ea.push_back({params[i].enabled, params[i].scale, params[i].qmin, params[i].qmax});
  }
  auto r = model::export_expanded(net, qs, "/tmp/mpq_test_export_act_expanded.pt", ea, &aq);
  CHECK(r.argmax_agreement >= 0.95);
  auto m = torch::jit::load("/tmp/mpq_test_export_act_expanded.pt");
  std::string g = m.get_method("forward").graph()->toString();
  size_t n = 0;
  for (size_t pos = g.find("fake_quantize_per_tensor_affine"); pos != std::string::npos;
       pos = g.find("fake_quantize_per_tensor_affine", pos + 1))
    ++n;
  CHECK(n == net.layers().size());
}

TEST_CASE("the statistics cache serves any subset of layers, identical to a direct pass",
          "[calibrate][cache]") {
  auto net = model::Network::load(test::save_zoo_model("mobilenetv2", "/tmp/mpq_test_cache.pt"));
  test::RandomImages data(16, 4);
  auto cc = context(data, 16);
  cc.options.max_bytes_per_layer = 4 * 9 * 5;  // below the stem's 9x9 Σ: it keeps 5 sampled rows
  std::string dir = "/tmp/mpq_test_stats_cache";
  std::filesystem::remove_all(dir);
  nlohmann::json desc = {{"model", "test"}};
  int computed = 0;
  auto compute = [&](const std::vector<int>& layers) {
    computed += static_cast<int>(layers.size());
    return ptq::collect_statistics(net, data, cc.indices, layers, cc.options);
  };
  bool hit = true;
  auto a = ptq::cached_statistics(dir, desc, {0, 1, 2}, compute, &hit);
  CHECK_FALSE(hit);
  CHECK(computed == 3);
  auto b = ptq::cached_statistics(dir, desc, {2, 5, 0}, compute, &hit);
  CHECK_FALSE(hit);
  CHECK(computed == 4);  // only layer 5 was missing
  auto c = ptq::cached_statistics(dir, desc, {5, 1}, compute, &hit);
  CHECK(hit);
  CHECK(computed == 4);
  auto direct = ptq::collect_statistics(net, data, cc.indices, {0, 1, 2, 5}, cc.options);
  CHECK(a[0].sampled_rows);
  CHECK(torch::equal(a[0].data, direct[0].data));  // sampled rows do not depend on the subset
  CHECK(torch::equal(b[2].data, direct[0].data));
  CHECK(torch::equal(a[1].data, direct[1].data));
  CHECK(torch::equal(c[1].data, direct[1].data));
  CHECK(torch::equal(b[1].data, direct[3].data));
  CHECK(torch::equal(c[0].data, direct[3].data));
  // A different description is a different cache.
  ptq::cached_statistics(dir, {{"model", "other"}}, {0}, compute, &hit);
  CHECK_FALSE(hit);
}

TEST_CASE("quantized-prefix statistics: each layer is measured with the earlier layers quantized",
          "[calibrate]") {
  // calibration.statistics = quantized_prefix had no test. Reference: the sequential procedure
  // written out here — for each layer in order, statistics of its input with every earlier layer
  // holding its quantized weights, then GPTQ of that layer alone. The pipeline must give the
  // same codes bit for bit (same primitives, same batches, same order of operations). Contrast:
  // FP statistics give other codes somewhere after the first layer, so the check can tell.
  auto net = model::Network::load(test::save_zoo_model("resnet20", "/tmp/mpq_test_prefix.pt"));
  test::RandomImages data(24, 5);
  auto cc = context(data, 24);
  ptq::WeightConfig w;
  w.method = ptq::WeightMethod::kGptq;
  w.bits = 3;
  w.statistics = ptq::Statistics::kQuantizedPrefix;
  const auto prefix = ptq::quantize_network(net, w, cc);
  net.restore_fp();
  w.statistics = ptq::Statistics::kFp;
  const auto fp = ptq::quantize_network(net, w, cc);
  net.restore_fp();

  w.statistics = ptq::Statistics::kQuantizedPrefix;
  const int count = static_cast<int>(net.layers().size());
  int checked = 0, differ_from_fp = 0;
  for (int i = 0; i < count; ++i) {
    const auto& got = prefix.layers[static_cast<size_t>(i)];
    if (!got.quantized) continue;
    auto stats = ptq::collect_statistics(net, data, cc.indices, {i}, cc.options);
    const auto ref = ptq::quantize_gptq(net, {i}, {ptq::layer_bits(w, i, count)}, w, stats)[0];
    INFO("layer " << i);
    CHECK(ref.q.codes == got.q.codes);
    CHECK(ref.q.scales == got.q.scales);
    if (fp.layers[static_cast<size_t>(i)].q.codes != got.q.codes) ++differ_from_fp;
    const auto eff = ref.q.effective_weights();
    net.set_weight(i, torch::from_blob(const_cast<float*>(eff.data()), net.fp_weight(i).sizes(),
                                       torch::kFloat32)
                          .clone());
    ++checked;
  }
  CHECK(checked >= 10);        // resnet20 has 22 layers; the default rules quantize them all
  CHECK(differ_from_fp >= 1);  // the prefix changes what later layers see
}

TEST_CASE("layer_bits: budget 0 is the MSE range at the base bits, every layer within [b, 8]",
          "[layer_bits]") {
  auto net = model::Network::load(test::save_zoo_model("mobilenetv2", "/tmp/mpq_test_lb.pt", 0.5));
  test::RandomImages data(32);
  auto cc = context(data, 32);
  ptq::WeightConfig w;
  w.method = ptq::WeightMethod::kLayerBits;
  w.bits = 3;
  w.layer_bits_budget = 0.0;
  auto none = ptq::quantize_network(net, w, cc);
  for (const auto& o : none.layers) {
    REQUIRE(o.quantized);
    CHECK(o.q.bits == 3);
    CHECK(o.attrs["base_bits"] == 3);
  }
  CHECK(none.summary["layer_bits_spent_pct"] == 0.0);
  // The same layers as single points with the MSE range at 3 bits: identical codes.
  ptq::WeightConfig rtn = w;
  rtn.method = ptq::WeightMethod::kRtn;
  rtn.range = quant::RangeSpec{quant::RangeMethod::kMse, 0};
  for (const auto& L : net.layers()) {
    auto q = quant::quantize_single_point_layer(net.fp_weight(L.index).data_ptr<float>(), L.c_out,
                                                L.d(), 3, rtn.granularity, rtn.range);
    CHECK(q.codes == none.layers[static_cast<size_t>(L.index)].q.codes);
  }
  w.layer_bits_budget = 0.5;
  auto some = ptq::quantize_network(net, w, cc);
  int raised = 0;
  for (const auto& o : some.layers) {
    CHECK((o.q.bits >= 3 && o.q.bits <= 8));
    raised += o.q.bits > 3;
    // Each layer's recorded output errors fall with the width (MSE range, more levels).
    const auto& e = o.attrs["output_error_by_bits"];
    CHECK(e["8"].get<double>() <= e["3"].get<double>());
  }
  CHECK(raised > 0);
  CHECK(some.summary["layer_bits_spent_pct"].get<double>() <= 50.0 + 1e-9);
  CHECK(some.summary["layer_bits_spent_pct"].get<double>() > 0.0);
}
