#include <cmath>
#include <limits>
#include <vector>

#include "catch.h"
#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "reference.h"
#include "tolerances.h"

namespace tol = mpq::test::tol;

using namespace mpq::quant;
using mpq::test::gaussian;
using mpq::test::ref_f;
using mpq::test::ref_min_f;

namespace {
// Exact and reference optima may differ by floating rounding of the closed-form minimizer: a
// relative tolerance on the optimum plus an absolute one on the scale of the objective,
// R = sum_j r_j^2 (f ranges over [0, R]).
constexpr double kRelTol = 1e-9;
constexpr double kScaleTol = 1e-12;

double sum_sq(const std::vector<double>& r) {
  double R = 0;
  for (double v : r) R += v * v;
  return R;
}

std::vector<std::vector<double>> edge_case_vectors() {
  std::vector<std::vector<double>> cases;
  for (size_t d : {1, 2, 5, 9, 31}) cases.push_back(gaussian(d, 100 + d));
  cases.push_back(std::vector<double>(7, 0.0));   // all zero
  cases.push_back(std::vector<double>(9, 0.37));  // constant
  cases.push_back(std::vector<double>(9, -2.5));  // constant negative
  auto outlier = gaussian(31, 7, 0.01);
  outlier[5] = 1e4;  // one huge outlier
  cases.push_back(outlier);
  std::vector<double> denorm = {1e-40, -3e-41, 2e-39, 0.0, 5e-42};  // float denormals
  cases.push_back(denorm);
  std::vector<double> mixed = {1e30, -1e-30, 3.0, 0.0, -2.0};  // huge dynamic range
  cases.push_back(mixed);
  return cases;
}
}  // namespace

TEST_CASE("exact search equals the dense brute force on edge-case vectors", "[search]") {
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    int L = max_level(bits);
    for (const auto& r : edge_case_vectors()) {
      std::vector<int8_t> codes(r.size());
      StepFit fit =
          exact_step_search(r.data(), static_cast<int64_t>(r.size()), L, nullptr, codes.data());
      double ref = ref_min_f(r, {}, L);
      INFO("bits=" << bits << " d=" << r.size() << " exact=" << fit.error << " ref=" << ref);
      double slack = kRelTol * ref + kScaleTol * sum_sq(r);
      CHECK(fit.error <= ref + slack);
      CHECK(fit.error >= ref - slack);
      // The reported error is f at the reported step, recomputed from the codes.
      if (fit.step > 0)
        CHECK(fit.error == Approx(ref_f(r, {}, fit.step, L)).epsilon(tol::kFloat64).margin(1e-300));
      for (size_t j = 0; j < r.size(); ++j) {
        CHECK(std::abs(codes[j]) <= L);
        if (fit.step > 0) CHECK(codes[j] == mpq::test::ref_code(r[j], fit.step, L));
      }
    }
  }
}

TEST_CASE("exact search on zero input returns no point", "[search]") {
  std::vector<double> r(5, 0.0);
  std::vector<int8_t> codes(5, 9);
  StepFit fit = exact_step_search(r.data(), 5, 7, nullptr, codes.data());
  CHECK(fit.step == 0.0);
  CHECK(fit.error == 0.0);
  for (auto c : codes) CHECK(c == 0);
  StepFit empty = exact_step_search(nullptr, 0, 7, nullptr, nullptr);
  CHECK(empty.error == 0.0);
}

TEST_CASE("exact search on a constant vector reproduces it exactly", "[search]") {
  std::vector<double> r(9, 0.37);
  StepFit fit = exact_step_search(r.data(), 9, 7, nullptr, nullptr);
  CHECK(fit.error ==
        Approx(0.0).margin(1e-24));  // absolute: 9 squares of float64 residuals of at most 1e-17
}

TEST_CASE("exact search is never worse than any grid search", "[search]") {
  for (int bits : {2, 3, 4, 6, 8}) {
    int L = max_level(bits);
    for (unsigned seed = 0; seed < 5; ++seed) {
      auto r = gaussian(257, seed);
      StepFit exact = exact_step_search(r.data(), 257, L, nullptr, nullptr);
      for (int n : {1, 7, 64, 1024}) {
        StepFit grid = grid_step_search(r.data(), 257, L, n, nullptr, nullptr);
        INFO("bits=" << bits << " seed=" << seed << " n=" << n);
        CHECK(exact.error <= grid.error * (1 + kRelTol) + kScaleTol * sum_sq(r));
      }
    }
  }
}

TEST_CASE("exact search matches brute force at d = 4608", "[search][slow]") {
  auto r = gaussian(4608, 42);
  for (int bits : {2, 4}) {
    int L = max_level(bits);
    StepFit fit = exact_step_search(r.data(), 4608, L, nullptr, nullptr);
    double ref = ref_min_f(r, {}, L);
    CHECK(fit.error == Approx(ref).epsilon(kRelTol));
  }
}

TEST_CASE("exact search matches brute force at 6 and 8 bits over many breakpoint blocks",
          "[search]") {
  // d = 400 at 8 bits: ~12000 breakpoints above the optimum, so the calendar queue (L >= 16)
  // runs through many blocks of buckets; heavy tails make the early stop matter.
  for (int bits : {6, 8}) {
    int L = max_level(bits);
    for (unsigned seed = 0; seed < 4; ++seed) {
      auto r = gaussian(400, seed + 77);
      if (seed % 2) r[5] *= 40;  // one outlier: clipping wins
      StepFit fit = exact_step_search(r.data(), 400, L, nullptr, nullptr);
      double ref = ref_min_f(r, {}, L);
      INFO("bits=" << bits << " seed=" << seed);
      CHECK(fit.error == Approx(ref).epsilon(kRelTol));
    }
  }
}

TEST_CASE("importance-weighted exact search equals the weighted brute force", "[search]") {
  for (int bits : {2, 3, 4, 6, 8}) {
    int L = max_level(bits);
    for (unsigned seed = 0; seed < 6; ++seed) {
      auto r = gaussian(23, seed);
      auto s = gaussian(23, seed + 1000);
      for (auto& v : s) v = v * v;  // nonnegative weights
      s[3] = 0.0;                   // a weight of zero is allowed
      StepFit fit = exact_step_search(r.data(), 23, L, s.data(), nullptr);
      double ref = ref_min_f(r, s, L);
      CHECK(fit.error == Approx(ref).epsilon(kRelTol));
    }
  }
}

TEST_CASE("grid search with one candidate is max-range round-to-nearest", "[search]") {
  auto r = gaussian(50, 3);
  double mx = 0;
  for (double v : r) mx = std::max(mx, std::fabs(v));
  StepFit g = grid_step_search(r.data(), 50, 7, 1, nullptr, nullptr);
  CHECK(g.step == Approx(mx / 7));
  CHECK(g.error == Approx(ref_f(r, {}, mx / 7, 7)));
}

TEST_CASE("exact search is exact on a vector with 60 orders of magnitude of range", "[search]") {
  // Optimum: the 1e30 element on the grid exactly, the others rounded to 0: f = 3^2 + 2^2 + 1e-60.
  // At 8 bits the optimum needs t * k == 1e30 for some k <= 127, which double cannot represent
  // for most k (the residual is then ~(1e30 * 1e-16)^2), so only 2 and 4 bits are asserted.
  std::vector<double> r = {1e30, -1e-30, 3.0, 0.0, -2.0};
  for (int bits : {2, 4}) {
    StepFit fit = exact_step_search(r.data(), 5, max_level(bits), nullptr, nullptr);
    CHECK(fit.error == Approx(13.0).epsilon(tol::kFloat64));
  }
}

TEST_CASE("early stopping never cuts off the optimum when clipping wins", "[search]") {
  // Many small values and a few outliers: the optimum clips the outliers hard, far below the
  // first breakpoints, which is where an unsound early stop would go wrong.
  for (int bits : {2, 3, 4, 8}) {
    int L = max_level(bits);
    for (unsigned seed = 0; seed < 8; ++seed) {
      auto r = gaussian(40, 500 + seed, 0.1);
      r[3] = 5.0 + seed;
      r[17] = -3.0;
      if (seed % 2) r[29] = 40.0;
      StepFit fit = exact_step_search(r.data(), 40, L, nullptr, nullptr);
      double ref = ref_min_f(r, {}, L);
      INFO("bits=" << bits << " seed=" << seed);
      CHECK(fit.error == Approx(ref).epsilon(kRelTol));
    }
  }
}
