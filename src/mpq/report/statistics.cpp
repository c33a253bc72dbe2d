#include "mpq/report/statistics.h"

namespace mpq::report {

MeanSd mean_sd(const std::vector<double>& xs) {
  MeanSd s;
  std::vector<double> v;
  v.reserve(xs.size());
  for (double x : xs)
    if (!std::isnan(x)) v.push_back(x);
  s.n = static_cast<int>(v.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

PooledSpread pooled_spread(const std::map<int64_t, std::vector<double>>& by_model) {
  PooledSpread p;
  std::vector<double> means;
  double variance = 0;
  for (const auto& [model, xs] : by_model) {
    const MeanSd m = mean_sd(xs);
    if (m.n == 0) continue;
    means.push_back(m.mean);
    if (m.n > 1) {
      variance += m.sd * m.sd;
      ++p.within_models;
    }
  }
  p.between = mean_sd(means);
  if (p.within_models > 0) p.within = std::sqrt(variance / p.within_models);
  return p;
}

}  // namespace mpq::report
