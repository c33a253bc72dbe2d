#include <vector>

#include "catch.h"
#include "mpq/quant/grid.h"
#include "tolerances.h"

namespace tol = mpq::test::tol;

using namespace mpq::quant;

TEST_CASE("max_level is 2^(b-1)-1 for every supported bit width", "[grid]") {
  CHECK(max_level(2) == 1);
  CHECK(max_level(3) == 3);
  CHECK(max_level(4) == 7);
  CHECK(max_level(5) == 15);
  CHECK(max_level(8) == 127);
}

TEST_CASE("quantize_value rounds half away from zero and saturates at ±L", "[grid]") {
  CHECK(quantize_value(0.5, 1.0, 7) == 1);
  CHECK(quantize_value(-0.5, 1.0, 7) == -1);
  CHECK(quantize_value(0.49, 1.0, 7) == 0);
  CHECK(quantize_value(2.5, 1.0, 7) == 3);
  CHECK(quantize_value(6.6, 1.0, 7) == 7);
  CHECK(quantize_value(100.0, 1.0, 7) == 7);
  CHECK(quantize_value(-100.0, 1.0, 7) == -7);
  CHECK(quantize_value(1000.0, 1.0, 127) == 127);
  CHECK(quantize_value(-1000.0, 1.0, 127) == -127);  // never -128: the grid is symmetric
  CHECK(quantize_value(3.0, 0.0, 7) == 0);           // degenerate step gives zero codes
  CHECK(quantize_value(0.7, 0.5, 1) == 1);
}

TEST_CASE("quantize_rtn returns codes and the exact squared error", "[grid]") {
  std::vector<float> x = {0.0f, 0.3f, -0.3f, 1.0f, -1.2f};
  std::vector<int8_t> k(x.size());
  double err = quantize_rtn(x.data(), 5, 0.25, 3, k.data());
  CHECK(k == std::vector<int8_t>({0, 1, -1, 3, -3}));  // 1.0/0.25 = 4 saturates at L = 3
  double expect = 0.05 * 0.05 * 2 + 0.25 * 0.25 + 0.45 * 0.45;
  CHECK(err == Approx(expect).epsilon(tol::kFloat32));
}

TEST_CASE("max_range_step puts the largest magnitude exactly on L", "[grid]") {
  std::vector<float> x = {0.1f, -2.0f, 1.5f};
  double step = max_range_step(x.data(), 3, 7);
  CHECK(step == Approx(2.0 / 7));
  CHECK(quantize_value(-2.0, step, 7) == -7);
  std::vector<float> zeros(4, 0.0f);
  CHECK(max_range_step(zeros.data(), 4, 7) == 0.0);
}
