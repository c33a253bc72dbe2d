#include <algorithm>
#include <random>

#include "catch.h"
#include "mpq/quant/allocation.h"
#include "mpq/quant/bit_alloc.h"
#include "mpq/util/error.h"
#include "tolerances.h"

namespace tol = mpq::test::tol;

using namespace mpq::quant;

namespace {

// Synthetic tables with diminishing errors: e(k) = e(1) * r^(k-1), r in (0, 1).
LayerTables synthetic(int64_t C, int K, unsigned seed, double macs = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.05, 1.0), ratio(0.1, 0.6);
  LayerTables t;
  t.c_out = C;
  t.K = K;
  t.point_cost_macs = macs;
  for (int64_t c = 0; c < C; ++c) {
    double e = u(rng), r = ratio(rng), w = u(rng);
    t.output_energy.push_back(1.0 + u(rng));
    t.weight_energy.push_back(1.0 + u(rng));
    for (int k = 0; k < K; ++k) {
      t.output_error.push_back(e);
      t.weight_error.push_back(w);
      e *= r;
      w *= r;
    }
  }
  return t;
}

double energy(const LayerTables& t) {
  double s = 0;
  for (double v : t.output_energy) s += v;
  return s;
}

// Sum over layers of the normalized output error left by an allocation.
double objective(const std::vector<LayerTables>& ls, const Allocation& a) {
  double s = 0;
  for (size_t l = 0; l < ls.size(); ++l)
    for (int64_t c = 0; c < ls[l].c_out; ++c)
      s += ls[l].output_error[static_cast<size_t>(c * ls[l].K +
                                                  a.points[l][static_cast<size_t>(c)] - 1)] /
           energy(ls[l]);
  return s;
}

}  // namespace

TEST_CASE("budget allocation spends exactly the budget, one point per grant", "[allocation]") {
  std::vector<LayerTables> ls = {synthetic(10, 4, 1), synthetic(30, 4, 2), synthetic(20, 4, 3)};
  AllocationOptions o;
  o.budget = 0.10;  // 10% of 60 channels = 6 extra points
  auto a = allocate(ls, o);
  CHECK(a.granted == 6);
  CHECK(a.spent == Approx(6.0));
  int64_t extra = 0;
  for (const auto& p : a.points)
    for (int n : p) {
      CHECK(n >= 1);
      CHECK(n <= 4);
      extra += n - 1;
    }
  CHECK(extra == 6);
}

TEST_CASE("with diminishing returns the greedy budget allocation is optimal", "[allocation]") {
  // Exhaustive check over every way to place 3 extra points on 2 layers x 3 channels, K = 3.
  for (unsigned seed = 0; seed < 20; ++seed) {
    std::vector<LayerTables> ls = {synthetic(3, 3, seed), synthetic(3, 3, seed + 100)};
    AllocationOptions o;
    o.budget = 0.5;  // 50% of 6 channels = 3 points
    o.max_points = 3;
    auto a = allocate(ls, o);
    double best = 1e300;
    for (int x = 0; x < 729; ++x) {  // 3^6 assignments of {1,2,3} points
      Allocation b;
      b.points = {std::vector<int>(3), std::vector<int>(3)};
      int v = x, extra = 0;
      for (int i = 0; i < 6; ++i) {
        b.points[static_cast<size_t>(i / 3)][static_cast<size_t>(i % 3)] = 1 + v % 3;
        extra += v % 3;
        v /= 3;
      }
      if (extra == 3) best = std::min(best, objective(ls, b));
    }
    CHECK(objective(ls, a) == Approx(best).epsilon(tol::kFloat64));
  }
}

TEST_CASE("per-layer scope gives every layer its own share", "[allocation]") {
  std::vector<LayerTables> ls = {synthetic(10, 4, 5), synthetic(40, 4, 6)};
  AllocationOptions o;
  o.budget = 0.2;
  o.scope = Scope::kLayer;
  auto a = allocate(ls, o);
  int e0 = 0, e1 = 0;
  for (int n : a.points[0]) e0 += n - 1;
  for (int n : a.points[1]) e1 += n - 1;
  CHECK(e0 == 2);
  CHECK(e1 == 8);
}

TEST_CASE("MAC budgets charge each point its channel's MACs", "[allocation]") {
  std::vector<LayerTables> ls = {synthetic(10, 3, 7, 100.0), synthetic(10, 3, 8, 1.0)};
  AllocationOptions o;
  o.unit = BudgetUnit::kMacs;
  o.budget = 0.05;  // 5% of (10*100 + 10*1) = 50.5 MACs
  auto a = allocate(ls, o);
  CHECK(a.budget == Approx(50.5));
  CHECK(a.spent <= 50.5);
  int e0 = 0;
  for (int n : a.points[0]) e0 += n - 1;
  CHECK(e0 == 0);  // a point of layer 0 costs 100 > 50.5: none fits
}

TEST_CASE("threshold adds points while the relative output error is above tau", "[allocation]") {
  LayerTables t = synthetic(50, 4, 9);
  AllocationOptions o;
  o.policy = Policy::kThreshold;
  o.threshold = 0.05;
  auto a = allocate({t}, o);
  for (int64_t c = 0; c < t.c_out; ++c) {
    int n = a.points[0][static_cast<size_t>(c)];
    double rel = t.output_error[static_cast<size_t>(c * 4 + n - 1)] /
                 t.output_energy[static_cast<size_t>(c)];
    if (n < 4) CHECK(rel <= 0.05);
    if (n > 1)
      CHECK(t.output_error[static_cast<size_t>(c * 4 + n - 2)] /
                t.output_energy[static_cast<size_t>(c)] >
            0.05);
  }
}

TEST_CASE("random allocation is seeded and spends the same budget", "[allocation]") {
  std::vector<LayerTables> ls = {synthetic(20, 4, 10), synthetic(20, 4, 11)};
  AllocationOptions o;
  o.policy = Policy::kRandom;
  o.budget = 0.25;
  auto a = allocate(ls, o), b = allocate(ls, o);
  o.seed = 1;
  auto c = allocate(ls, o);
  CHECK(a.points == b.points);
  CHECK(a.points != c.points);
  CHECK(a.granted == 10);
  CHECK(c.granted == 10);
}

TEST_CASE("weight-error allocation ranks by weight error and needs no statistics", "[allocation]") {
  LayerTables t = synthetic(10, 3, 12);
  t.output_error.clear();
  t.output_energy.clear();
  AllocationOptions o;
  o.policy = Policy::kWeightError;
  o.budget = 0.3;
  auto a = allocate({t}, o);
  CHECK(a.granted == 3);
  // The channel with the largest first-step weight-error reduction got a point.
  int64_t best = 0;
  for (int64_t c = 1; c < 10; ++c)
    if (t.weight_error[static_cast<size_t>(c * 3)] -
            t.weight_error[static_cast<size_t>(c * 3 + 1)] >
        t.weight_error[static_cast<size_t>(best * 3)] -
            t.weight_error[static_cast<size_t>(best * 3 + 1)])
      best = c;
  CHECK(a.points[0][static_cast<size_t>(best)] >= 2);
  o.policy = Policy::kBudget;
  CHECK_THROWS_AS(allocate({t}, o), mpq::ConfigError);  // output errors needed
}

TEST_CASE("uniform gives every channel the same number of points", "[allocation]") {
  LayerTables t = synthetic(7, 4, 13);
  AllocationOptions o;
  o.policy = Policy::kUniform;
  o.uniform_points = 3;
  auto a = allocate({t}, o);
  for (int n : a.points[0]) CHECK(n == 3);
  CHECK(a.granted == 14);
}

// ---- per-layer bit widths (true mixed precision) ----------------------------------------------

TEST_CASE("layer bits go where the output error falls most per extra bit operation", "[alloc]") {
  // Three layers at 4 bits: errors at 4..8 bits, energies, MACs. Gains per unit cost of the
  // first bit: layer 0 (1.0 - 0.25) / 1 / (100 / 4) = 0.03, layer 1 (0.5 - 0.4) / 1 / 25 =
  // 0.004, layer 2 (2.0 - 0.5) / 2 / (400 / 4) = 0.0075.
  std::vector<LayerBitTable> t(3);
  t[0] = {4, {1.0, 0.25, 0.0625, 0.02, 0.01}, 1.0, 100};
  t[1] = {4, {0.5, 0.4, 0.39, 0.385, 0.38}, 1.0, 100};
  t[2] = {4, {2.0, 0.5, 0.125, 0.03, 0.01}, 2.0, 400};
  // Nothing to spend: every layer keeps its base.
  auto none = allocate_layer_bits(t, 4, 0.0);
  CHECK(none.bits == std::vector<int>{4, 4, 4});
  CHECK(none.spent == 0.0);
  // Budget 0.05 of 600 MACs = 30 base-MACs: one bit of layer 0 (cost 25) fits, layer 2's (100)
  // does not, and the 5 left buy nothing.
  auto small = allocate_layer_bits(t, 4, 0.05);
  CHECK(small.bits == std::vector<int>{5, 4, 4});
  CHECK(small.spent == Approx(25.0));
  CHECK(small.budget == Approx(30.0));
  // A large budget ends with every layer at 8 bits; spent never exceeds the budget.
  for (double b : {0.1, 0.3, 0.7, 1.0, 5.0}) {
    auto a = allocate_layer_bits(t, 4, b);
    CHECK(a.spent <= a.budget + 1e-9);
    double cost = 0;
    for (size_t l = 0; l < t.size(); ++l) cost += (a.bits[l] - 4) * t[l].macs / 4;
    CHECK(cost == Approx(a.spent));
    for (int bits : a.bits) CHECK((bits >= 4 && bits <= 8));
  }
  CHECK(allocate_layer_bits(t, 4, 5.0).bits == std::vector<int>{8, 8, 8});
  // A layer whose error does not fall never gets a bit, whatever the budget.
  t[1].error = {0.5, 0.5, 0.5, 0.5, 0.5};
  CHECK(allocate_layer_bits(t, 4, 5.0).bits[1] == 4);
  // A layer already at its widest (first layer at 8 bits) is left alone.
  t[0] = {8, {0.01}, 1.0, 100};
  CHECK(allocate_layer_bits(t, 4, 5.0).bits[0] == 8);
}
