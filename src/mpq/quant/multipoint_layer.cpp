#include "mpq/quant/multipoint_layer.h"

#include <cmath>
#include <limits>

#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "mpq/util/error.h"

namespace mpq::quant {

namespace {

int64_t group_of(const LayerQuantSpec& s, int64_t c) {
  return c / (s.c_out / s.groups);
}

// Output errors of the current residuals of all channels, batched per group in blocks of at most
// kDeltaBlockBytes of float32 deltas (VGG-16's first FC: 4096 x 25088 = 411 MB at once
// otherwise). Each block's rows go to the OpenMP threads in fixed parts of kErrorRows rows, one
// GEMM each (BLAS is single-threaded, util/blas.h): a row's error comes from a GEMM of the same
// shape whatever the thread count (OpenBLAS's results depend on the number of rows of a call).
constexpr int64_t kDeltaBlockBytes = int64_t{64} << 20;
constexpr int64_t kErrorRows = 64;

std::vector<double> residual_output_errors(const LayerQuantSpec& s,
                                           const std::vector<GreedyChannel>& chans) {
  std::vector<double> out(static_cast<size_t>(s.c_out), std::numeric_limits<double>::quiet_NaN());
  if (!s.stats) return out;
  const int64_t per = s.c_out / s.groups;
  const int64_t block = std::max<int64_t>(1, std::min(per, kDeltaBlockBytes / (4 * s.d)));
  for (int64_t g = 0; g < s.groups; ++g) {
    for (int64_t b0 = 0; b0 < per; b0 += block) {
      const int64_t rows = std::min(block, per - b0);
      auto deltas = torch::empty({rows, s.d}, torch::kFloat32);
      float* p = deltas.data_ptr<float>();
#pragma omp parallel for schedule(static) if (rows >= 64)
      for (int64_t i = 0; i < rows; ++i)
        chans[static_cast<size_t>(g * per + b0 + i)].residual(p + i * s.d);
      const int64_t parts = (rows + kErrorRows - 1) / kErrorRows;
#pragma omp parallel for schedule(dynamic, 1) if (parts > 1)
      for (int64_t part = 0; part < parts; ++part) {
        const int64_t r0 = part * kErrorRows, r1 = std::min(rows, r0 + kErrorRows);
        auto e = output_errors(*s.stats, g, deltas.narrow(0, r0, r1 - r0));
        for (int64_t i = r0; i < r1; ++i)
          out[static_cast<size_t>(g * per + b0 + i)] = e[static_cast<size_t>(i - r0)];
      }
    }
  }
  return out;
}

}  // namespace

LayerCandidates LayerCandidates::build(const LayerQuantSpec& spec) {
  MPQ_ASSERT(spec.c_out > 0 && spec.d > 0 && spec.groups >= 1 && spec.c_out % spec.groups == 0,
             "layer shape");
  MPQ_ASSERT(spec.max_points >= 1, "max_points");
  if (spec.stats)
    MPQ_ASSERT(spec.stats->d == spec.d && spec.stats->groups == spec.groups, "statistics shape");
  LayerCandidates lc;
  lc.spec_ = spec;
  lc.spec_.search.bits = spec.bits;
  const int L = max_level(spec.bits);
  const int64_t C = spec.c_out, d = spec.d;
  const int K = spec.max_points;

  // Importance s = diag(Σ) of each channel's group, for the weighted objective.
  torch::Tensor diag;
  if (spec.weighted) {
    if (!spec.stats)
      throw ConfigError("the importance-weighted objective needs calibration statistics");
    diag = spec.stats->diagonal();  // [G, d] float64
  }
  auto importance = [&](int64_t c) -> const double* {
    return spec.weighted ? diag[group_of(spec, c)].data_ptr<double>() : nullptr;
  };

  lc.channels_.reserve(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) lc.channels_.emplace_back(spec.w + c * d, d);

  // Shared first step for per-layer granularity.
  double layer_step = 0;
  if (spec.granularity == Granularity::kPerLayer && !spec.first) {
    if (spec.first_point == FirstPoint::kMaxRange) {
      layer_step = max_range_step(spec.w, C * d, L);
    } else {
      std::vector<double> all(spec.w, spec.w + C * d), imp;
      if (spec.weighted) {
        imp.resize(static_cast<size_t>(C * d));
        for (int64_t c = 0; c < C; ++c)
          std::copy(importance(c), importance(c) + d, imp.begin() + c * d);
      }
      StepFit f = spec.search.search == StepSearch::kExact
                      ? exact_step_search(all.data(), C * d, L,
                                          spec.weighted ? imp.data() : nullptr, nullptr)
                      : grid_step_search(all.data(), C * d, L, spec.search.grid_candidates,
                                         spec.weighted ? imp.data() : nullptr, nullptr);
      layer_step = f.step;
    }
  }

  auto& t = lc.tables_;
  t.c_out = C;
  t.K = K;
  t.weight_error.assign(static_cast<size_t>(C * K), 0.0);
  if (spec.stats) t.output_error.assign(static_cast<size_t>(C * K), 0.0);
  t.point_cost_macs = spec.point_cost_macs;
  t.weight_energy.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    t.weight_energy[static_cast<size_t>(c)] = lc.channels_[static_cast<size_t>(c)].weight_sq_norm();
  if (spec.stats) {
    // w_c^T Σ w_c: the output error of the all-zero approximation.
    t.output_energy = residual_output_errors(spec, lc.channels_);
  }

  for (int k = 0; k < K; ++k) {
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t c = 0; c < C; ++c) {
      auto& ch = lc.channels_[static_cast<size_t>(c)];
      if (k == 0 && spec.first) {
        ch.add_given_point(spec.first->scales[static_cast<size_t>(c)],
                           spec.first->codes.data() + c * d);
      } else if (k == 0 && spec.granularity == Granularity::kPerLayer) {
        ch.add_fixed_point(layer_step, spec.bits);
      } else if (k == 0 && spec.first_point == FirstPoint::kMaxRange) {
        ch.add_fixed_point(max_range_step(spec.w + c * d, d, L), spec.bits);
      } else {
        ch.add_point(lc.spec_.search, importance(c));
      }
      t.weight_error[static_cast<size_t>(c * K + k)] = ch.residual_sq_norm();
    }
    if (spec.stats) {
      auto e = residual_output_errors(spec, lc.channels_);
      for (int64_t c = 0; c < C; ++c)
        t.output_error[static_cast<size_t>(c * K + k)] = e[static_cast<size_t>(c)];
    }
  }
  return lc;
}

QuantizedLayer LayerCandidates::finalize(const std::vector<int>& points,
                                         const std::vector<int32_t>& grant_order, Refit refit,
                                         double* final_weight_error, double* final_output_error) {
  const auto& s = spec_;
  MPQ_ASSERT(static_cast<int64_t>(points.size()) == s.c_out, "points size");
  if (refit == Refit::kOutput && !s.stats)
    throw ConfigError("refit \"output\" needs calibration statistics");
  bool keep_first = s.granularity == Granularity::kPerLayer;
  std::vector<torch::Tensor> dense;  // Σ_g as float64 for the output refit
  if (refit == Refit::kOutput)
    for (int64_t g = 0; g < s.groups; ++g) dense.push_back(s.stats->dense(g).contiguous());
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t c = 0; c < s.c_out; ++c) {
    auto& ch = channels_[static_cast<size_t>(c)];
    ch.truncate(points[static_cast<size_t>(c)]);
    if (refit == Refit::kWeight)
      ch.refit_steps(nullptr, false, keep_first);
    else if (refit == Refit::kOutput)
      ch.refit_steps(dense[static_cast<size_t>(group_of(s, c))].data_ptr<double>(), false,
                     keep_first);
  }
  QuantizedLayer q = pack_channels(channels_, s.bits, s.max_points);
  q.weight_error.assign(tables_.weight_error.begin(), tables_.weight_error.end());
  if (!tables_.output_error.empty())
    q.output_error.assign(tables_.output_error.begin(), tables_.output_error.end());
  q.grant_order = grant_order;
  std::vector<double> channel_we(channels_.size());
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t c = 0; c < s.c_out; ++c)
    channel_we[static_cast<size_t>(c)] = channels_[static_cast<size_t>(c)].residual_sq_norm();
  double we = 0;
  for (double v : channel_we) we += v;  // in channel order, for any thread count
  if (final_weight_error) *final_weight_error = we;
  if (final_output_error) {
    double oe = std::numeric_limits<double>::quiet_NaN();
    if (s.stats) {
      oe = 0;
      for (double v : residual_output_errors(s, channels_)) oe += v;
    }
    *final_output_error = oe;
  }
  return q;
}

}  // namespace mpq::quant
