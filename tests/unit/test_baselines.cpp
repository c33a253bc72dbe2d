// Issue-4 baselines against slow references: ACIQ, percentile, OCS, bit allocation.
#include <algorithm>
#include <cmath>
#include <random>

#include "mpq/quant/bit_alloc.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/layer.h"
#include "mpq/quant/ocs.h"
#include "mpq/quant/ranges.h"
#include "reference.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

using namespace mpq::quant;

TEST_CASE("ACIQ alpha minimizes the analytic error (dense-grid reference)", "[aciq]") {
  for (Prior prior : {Prior::kLaplace, Prior::kGaussian}) {
    for (int bits : {2, 3, 4, 8}) {
      for (bool one_sided : {false, true}) {
        int L = one_sided ? (1 << bits) - 1 : max_level(bits);
        double alpha = aciq_alpha(prior, 1.3, L, one_sided);
        // Reference: the best of 200000 evenly spaced alphas in (0, 26].
        double best = 1e300, best_a = 0;
        for (int i = 1; i <= 200000; ++i) {
          double a = 26.0 * i / 200000;
          double e = aciq_expected_error(prior, 1.3, a, L, one_sided);
          if (e < best) best = e, best_a = a;
        }
        INFO("prior " << static_cast<int>(prior) << " bits " << bits << " one-sided " << one_sided);
        CHECK(alpha ==
              Approx(best_a).margin(26.0 / 200000 * 2));  // two steps of the reference grid
        CHECK(aciq_expected_error(prior, 1.3, alpha, L, one_sided) <=
              best * (1 + tol::kFloat64Iterative));
      }
    }
  }
}

TEST_CASE("the ACIQ error model matches Monte-Carlo quantization error", "[aciq]") {
  // E(α) of the Laplace prior vs the measured MSE of clipping + rounding Laplace samples: the
  // formula drops the rounding noise of clipped values, so allow 10%.
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> ex(1.0);
  std::bernoulli_distribution sign(0.5);
  std::vector<double> x(400000);
  for (auto& v : x) v = (sign(rng) ? 1 : -1) * ex(rng);  // Laplace(0, 1)
  for (int bits : {3, 4}) {
    int L = max_level(bits);
    double a = aciq_alpha(Prior::kLaplace, 1.0, L, false);
    double mse = 0;
    for (double v : x) {
      double q = quantize_value(v, a / L, L) * (a / L);
      mse += (v - q) * (v - q);
    }
    mse /= static_cast<double>(x.size());
    // The expected error is an analytic model of the measured one (continuous Laplace, no
    // sampling noise): 10% covers the model error at these sample sizes, not rounding.
    constexpr double kAnalyticModel = 0.10;
    CHECK(aciq_expected_error(Prior::kLaplace, 1.0, a, L, false) ==
          Approx(mse).epsilon(kAnalyticModel));
  }
}

TEST_CASE("prior scales are mean |x| and RMS", "[aciq]") {
  std::vector<float> x = {1, -2, 3, -4};
  CHECK(fit_prior_scale(Prior::kLaplace, x.data(), 4) == Approx(2.5));
  CHECK(fit_prior_scale(Prior::kGaussian, x.data(), 4) == Approx(std::sqrt(7.5)));
}

TEST_CASE("percentile of |x| interpolates between order statistics", "[percentile]") {
  auto v = mpq::test::to_float(mpq::test::gaussian(1001, 9));
  std::vector<double> s;
  for (float f : v) s.push_back(std::fabs(double(f)));
  std::sort(s.begin(), s.end());
  for (double p : {0.0, 50.0, 99.0, 99.99, 100.0}) {
    double pos = p / 100 * 1000;
    size_t lo = static_cast<size_t>(std::floor(pos));
    double ref = s[lo] + (pos - lo) * (s[std::min<size_t>(lo + 1, 1000)] - s[lo]);
    CHECK(abs_percentile(v.data(), 1001, p) == Approx(ref).epsilon(tol::kFloat64));
  }
  CHECK(abs_percentile(v.data(), 0, 50) == 0.0);
}

TEST_CASE("single-point range methods use the right step", "[ranges]") {
  auto w = mpq::test::to_float(mpq::test::gaussian(64, 10));
  int L = max_level(4);
  CHECK(range_step(w.data(), 64, L, {RangeMethod::kMax, 0}) == Approx(max_abs(w.data(), 64) / L));
  CHECK(range_step(w.data(), 64, L, {RangeMethod::kPercentile, 90}) ==
        Approx(abs_percentile(w.data(), 64, 90) / L));
  double laplace =
      aciq_alpha(Prior::kLaplace, fit_prior_scale(Prior::kLaplace, w.data(), 64), L, false) / L;
  CHECK(range_step(w.data(), 64, L, {RangeMethod::kAciqLaplace, 0}) == Approx(laplace));
  std::vector<double> wd(w.begin(), w.end());
  double mse_step = range_step(w.data(), 64, L, {RangeMethod::kMse, 0});
  CHECK(mpq::test::ref_f(wd, {}, mse_step, L) ==
        Approx(mpq::test::ref_min_f(wd, {}, L)).epsilon(tol::kFloat32));
}

TEST_CASE("OCS splitting leaves the float layer unchanged", "[ocs]") {
  torch::manual_seed(4);
  for (int64_t k : {1, 9}) {
    int64_t c_out = 6, c_in = 10;
    auto w = torch::randn({c_out, c_in, k});
    w[2][7][0] = 9.0f;  // an outlier
    auto split = ocs_split(w.data_ptr<float>(), c_out, c_in, k, 4);
    REQUIRE(split.splits() == 4);
    CHECK(split.source[0] == 7);  // the outlier's channel is split first
    auto ws = torch::from_blob(split.weight.data(), {c_out, c_in + 4, k}, torch::kFloat32);
    // The split layer on the duplicated input equals the original layer.
    auto x = torch::randn({5, c_in, k});
    auto idx = torch::arange(c_in).to(torch::kInt64);
    auto dup = torch::cat({idx, torch::tensor(split.source)});
    auto xs = x.index_select(1, dup);
    auto y = torch::einsum("oik,nik->no", {w, x});
    auto ys = torch::einsum("oik,nik->no", {ws, xs});
    CHECK((y - ys).abs().max().item<double>() < tol::kFloat32Network);
    // Merging the unquantized split weight gives back the original exactly.
    auto merged = ocs_merge(split, split.weight);
    for (int64_t i = 0; i < w.numel(); ++i)
      CHECK(merged[static_cast<size_t>(i)] ==
            Approx(w.data_ptr<float>()[i]).epsilon(tol::kFloat32Ulp));
    // Splitting reduced the layer's range: the largest |w| was halved.
    CHECK(max_abs(split.weight.data(), static_cast<int64_t>(split.weight.size())) < 9.0);
  }
  CHECK(ocs_split_count(0.0, 64) == 0);
  CHECK(ocs_split_count(0.02, 64) == 2);
  CHECK(ocs_split_count(1.0, 64) == 64);
}

TEST_CASE("OCS layers record their splits and merge on dequantization", "[ocs]") {
  auto w = mpq::test::to_float(mpq::test::gaussian(4 * 8 * 3, 12));
  w[5] = 20.0f;
  auto split = ocs_split(w.data(), 4, 8, 3, 2);
  auto q =
      quantize_single_point_layer(split.weight.data(), 4, 10 * 3, 4, Granularity::kPerLayer, {});
  q.ocs_source = split.source;
  q.ocs_k = 3;
  CHECK(q.original_d() == 24);
  auto eff = q.effective_weights();
  REQUIRE(eff.size() == 96);
  std::vector<float> stored(4 * 30);
  q.dequantize(stored.data());
  CHECK(eff == ocs_merge(split, stored));
  // 2 split columns of 4 x 3 weights at 4 bits over 96 weights at 4 bits.
  CHECK(q.code_bits() == Approx(4.0 * 30 * 4));
  CHECK(extra_macs(q, 1000.0) == Approx(1000.0 * 6 / 24));
}

TEST_CASE("bit allocation meets the average and is optimal for diminishing errors", "[bit_alloc]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  for (int trial = 0; trial < 10; ++trial) {
    const int64_t C = 4;
    const int W = 7;  // bits 2..8
    std::vector<double> e(static_cast<size_t>(C * W));
    for (int64_t c = 0; c < C; ++c) {
      double v = u(rng) * 10;
      for (int j = 0; j < W; ++j, v /= 3.5 + u(rng)) e[static_cast<size_t>(c * W + j)] = v;
    }
    auto a = allocate_bits(e, C, 2, 8, 4.0);
    int sum = 0;
    for (int b : a.bits) sum += b;
    CHECK(sum == 16);
    CHECK(a.average == Approx(4.0));
    // Exhaustive reference over all allocations with the same total.
    double best = 1e300;
    for (int x = 0; x < 7 * 7 * 7 * 7; ++x) {
      int b[4] = {2 + x % 7, 2 + (x / 7) % 7, 2 + (x / 49) % 7, 2 + (x / 343) % 7};
      if (b[0] + b[1] + b[2] + b[3] != 16) continue;
      double t = 0;
      for (int c = 0; c < 4; ++c) t += e[static_cast<size_t>(c * W + b[c] - 2)];
      best = std::min(best, t);
    }
    double got = 0;
    for (int c = 0; c < 4; ++c)
      got += e[static_cast<size_t>(c * W + a.bits[static_cast<size_t>(c)] - 2)];
    CHECK(got == Approx(best).epsilon(tol::kFloat64));
  }
}
