// The statistics every table and figure of mpq reports, in one place (aggregate.h, report.h).
//
//   mean_sd       mean and sample standard deviation (ddof = 1) of the observations
//   pooled_spread with independently trained models as replicates (--pool-model-seeds): the
//                 spread between models (sd of the per-model means) and within them (root of
//                 the mean within-model variance, over models with at least two observations)
//
// NaN policy: a NaN is a missing observation (a metric a trial could not compute), skipped; n
// counts the rest. The sd of fewer than two observations is NaN: tables print "-", figures draw
// no error bar (MeanSd::error_bar() = 0).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

namespace mpq::report {

struct MeanSd {
  int n = 0;          ///< observations (NaNs skipped)
  double mean = NAN;  ///< NaN when n = 0
  double sd = NAN;    ///< ddof = 1; NaN when n < 2
  double error_bar() const { return n > 1 ? sd : 0.0; }
};

MeanSd mean_sd(const std::vector<double>& xs);

struct PooledSpread {
  MeanSd between;         ///< over the per-model means (models with at least one observation)
  double within = NAN;    ///< sqrt(mean of the within-model variances); NaN if no model has two
  int within_models = 0;  ///< models that contributed to `within`
};

/// Observations grouped by model (key: model seed).
PooledSpread pooled_spread(const std::map<int64_t, std::vector<double>>& by_model);

}  // namespace mpq::report
