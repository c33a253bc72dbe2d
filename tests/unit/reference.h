// Slow, obviously-correct reference implementations used only by the tests. They share no code
// with src/mpq/quant beyond max_level(): every value is recomputed from its definition.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace mpq::test {

/// k_j(t) = clamp(round(r / t), -L, L), by definition.
inline int ref_code(double r, double t, int L) {
  double k = std::round(r / t);
  return static_cast<int>(std::max<double>(-L, std::min<double>(L, k)));
}

/// f(t) = sum_j s_j (r_j - t k_j(t))^2, by definition.
inline double ref_f(const std::vector<double>& r, const std::vector<double>& s, double t, int L) {
  double f = 0;
  for (size_t j = 0; j < r.size(); ++j) {
    double e = r[j] - t * ref_code(r[j], t, L);
    f += (s.empty() ? 1.0 : s[j]) * e * e;
  }
  return f;
}

/// Dense brute force of min_{t>0} f(t): every breakpoint |r_j|/(k-1/2), and on every interval
/// between consecutive breakpoints the codes at the interval's midpoint (computed directly) with
/// the closed-form minimizer clamped to the interval. O((dL)^2) in double.
inline double ref_min_f(const std::vector<double>& r, const std::vector<double>& s, int L,
                        double* argmin = nullptr) {
  std::vector<double> bps;
  for (double v : r)
    if (v != 0)
      for (int k = 1; k <= L; ++k) bps.push_back(std::fabs(v) / (k - 0.5));
  double R = 0;
  for (size_t j = 0; j < r.size(); ++j) R += (s.empty() ? 1.0 : s[j]) * r[j] * r[j];
  double best = R, best_t = 0;
  if (bps.empty()) {
    if (argmin) *argmin = 0;
    return best;
  }
  std::sort(bps.begin(), bps.end());
  bps.erase(std::unique(bps.begin(), bps.end()), bps.end());
  std::vector<double> edges;
  edges.push_back(0.0);
  edges.insert(edges.end(), bps.begin(), bps.end());
  edges.push_back(bps.back() * 4 + 1);
  for (size_t i = 0; i + 1 < edges.size(); ++i) {
    double lo = edges[i], hi = edges[i + 1];
    double mid = 0.5 * (lo + hi);
    double S1 = 0, S2 = 0;
    for (size_t j = 0; j < r.size(); ++j) {
      int k = ref_code(r[j], mid, L);
      double w = s.empty() ? 1.0 : s[j];
      S1 += w * r[j] * k;
      S2 += w * static_cast<double>(k) * k;
    }
    std::vector<double> cands = {hi};
    if (lo > 0) cands.push_back(lo);
    if (S2 > 0) cands.push_back(std::min(hi, std::max(lo > 0 ? lo : 1e-300, S1 / S2)));
    for (double t : cands) {
      double f = ref_f(r, s, t, L);
      if (f < best) {
        best = f;
        best_t = t;
      }
    }
  }
  if (argmin) *argmin = best_t;
  return best;
}

inline std::vector<double> gaussian(size_t d, unsigned seed, double sigma = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, sigma);
  std::vector<double> v(d);
  for (auto& x : v) x = n(rng);
  return v;
}

inline std::vector<float> to_float(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

}  // namespace mpq::test
