#include "mpq/quant/grid.h"

#include <cmath>

#include "mpq/util/error.h"

namespace mpq::quant {

int max_level(int bits) {
  MPQ_ASSERT(bits >= kMinBits && bits <= kMaxBits, "bits out of range");
  return (1 << (bits - 1)) - 1;
}

int quantize_value(double x, double step, int L) {
  if (!(step > 0)) return 0;
  double k = std::round(x / step);
  if (k > L) k = L;
  if (k < -L) k = -L;
  return static_cast<int>(k);
}

namespace {
template <typename T>
double rtn_impl(const T* x, int64_t d, double step, int L, int8_t* codes) {
  double err = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    int k = quantize_value(x[j], step, L);
    codes[j] = static_cast<int8_t>(k);
    double e = static_cast<double>(x[j]) - step * k;
    err += e * e;
  }
  return err;
}
}  // namespace

double quantize_rtn(const float* x, int64_t d, double step, int L, int8_t* codes) {
  return rtn_impl(x, d, step, L, codes);
}
double quantize_rtn(const double* x, int64_t d, double step, int L, int8_t* codes) {
  return rtn_impl(x, d, step, L, codes);
}

double max_abs(const float* x, int64_t d) {
  double m = 0.0;
  for (int64_t j = 0; j < d; ++j) m = std::fmax(m, std::fabs(static_cast<double>(x[j])));
  return m;
}

double max_range_step(const float* x, int64_t d, int L) {
  return max_abs(x, d) / L;
}

}  // namespace mpq::quant
