#include "mpq/quant/ranges.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mpq::quant {

double aciq_expected_error(Prior prior, double s, double a, int L, bool one_sided) {
  double clip;
  if (prior == Prior::kLaplace) {
    clip = 2.0 * s * s * std::exp(-a / s);
  } else {
    double z = a / (s * std::sqrt(2.0));
    clip = (a * a + s * s) * std::erfc(z) -
           a * s * std::sqrt(2.0 / M_PI) * std::exp(-a * a / (2 * s * s));
  }
  if (one_sided) clip *= 0.5;
  double step = a / L;
  return clip + step * step / 12.0;
}

double aciq_alpha(Prior prior, double scale, int L, bool one_sided) {
  if (!(scale > 0)) return 0.0;
  // E is convex in α on (0, ∞) for both priors: golden-section search on a bracket that
  // certainly contains the minimizer (the clip term is negligible beyond 20 scales).
  double lo = 1e-6 * scale, hi = 20.0 * scale;
  const double g = (std::sqrt(5.0) - 1) / 2;
  double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
  double f1 = aciq_expected_error(prior, scale, x1, L, one_sided);
  double f2 = aciq_expected_error(prior, scale, x2, L, one_sided);
  for (int it = 0; it < 200 && hi - lo > 1e-12 * scale; ++it) {
    if (f1 < f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - g * (hi - lo);
      f1 = aciq_expected_error(prior, scale, x1, L, one_sided);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + g * (hi - lo);
      f2 = aciq_expected_error(prior, scale, x2, L, one_sided);
    }
  }
  return 0.5 * (lo + hi);
}

double fit_prior_scale(Prior prior, const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += prior == Prior::kLaplace ? std::fabs(double(x[i])) : double(x[i]) * x[i];
  s /= static_cast<double>(n);
  return prior == Prior::kLaplace ? s : std::sqrt(s);
}

double abs_percentile(const float* x, int64_t n, double p) {
  if (n <= 0) return 0.0;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = std::fabs(double(x[i]));
  double pos = std::min(1.0, std::max(0.0, p / 100.0)) * static_cast<double>(n - 1);
  auto lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  double a = v[lo];
  double b =
      hi == lo ? a : *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return a + (pos - static_cast<double>(lo)) * (b - a);
}

}  // namespace mpq::quant
