#include "mpq/quant/multipoint_layer.h"

#include <dlfcn.h>
#include <omp.h>

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

// OpenBLAS's thread count, looked up at run time (libblas.so.3 is OpenBLAS on Debian when
// libopenblas0-pthread is installed; with another BLAS these are null and nothing changes).
using SetThreads = void (*)(int);
using GetThreads = int (*)();
const SetThreads openblas_set_threads =
    reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
const GetThreads openblas_get_threads =
    reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));

// While alive, OpenBLAS runs single-threaded in its caller: the output-error GEMMs are split
// over the OpenMP threads that also run the greedy searches. With both pools active on a 2-core
// machine, OpenBLAS's idle workers yield-spin for ~2^28 cycles after every call and take CPU
// from the OpenMP threads (~10% of a ResNet-18-sized build, docs/benchmarks.md).
class SerialBlas {
 public:
  SerialBlas() : saved_(openblas_get_threads && openblas_set_threads ? openblas_get_threads() : 0) {
    if (saved_ > 1) openblas_set_threads(1);
  }
  ~SerialBlas() {
    if (saved_ > 1) openblas_set_threads(saved_);
  }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
  bool active() const { return saved_ > 1; }

 private:
  int saved_;
};

// Output errors of the current residuals of all channels, batched per group in blocks of at most
// kDeltaBlockBytes of float32 deltas (VGG-16's first FC: 4096 x 25088 = 411 MB at once
// otherwise); with `split`, each block's rows are divided among the OpenMP threads (BLAS
// single-threaded, SerialBlas).
constexpr int64_t kDeltaBlockBytes = int64_t{64} << 20;

std::vector<double> residual_output_errors(const LayerQuantSpec& s,
                                           const std::vector<GreedyChannel>& chans,
                                           bool split = false) {
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
      const int parts = split && rows >= 64 ? std::max(1, omp_get_max_threads()) : 1;
#pragma omp parallel for schedule(static) if (parts > 1)
      for (int part = 0; part < parts; ++part) {
        const int64_t r0 = rows * part / parts, r1 = rows * (part + 1) / parts;
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
  if (spec.granularity == Granularity::kPerLayer) {
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
  SerialBlas serial_blas;
  const bool split = serial_blas.active();
  if (spec.stats) {
    // w_c^T Σ w_c: the output error of the all-zero approximation.
    t.output_energy = residual_output_errors(spec, lc.channels_, split);
  }

  for (int k = 0; k < K; ++k) {
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t c = 0; c < C; ++c) {
      auto& ch = lc.channels_[static_cast<size_t>(c)];
      if (k == 0 && spec.granularity == Granularity::kPerLayer) {
        ch.add_fixed_point(layer_step, spec.bits);
      } else if (k == 0 && spec.first_point == FirstPoint::kMaxRange) {
        ch.add_fixed_point(max_range_step(spec.w + c * d, d, L), spec.bits);
      } else {
        ch.add_point(lc.spec_.search, importance(c));
      }
      t.weight_error[static_cast<size_t>(c * K + k)] = ch.residual_sq_norm();
    }
    if (spec.stats) {
      auto e = residual_output_errors(spec, lc.channels_, split);
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

double layer_output_error(const LayerQuantSpec& spec, const QuantizedLayer& q) {
  if (!spec.stats) return std::numeric_limits<double>::quiet_NaN();
  std::vector<float> deq(static_cast<size_t>(spec.c_out * spec.d));
  q.dequantize(deq.data());
  int64_t per = spec.c_out / spec.groups;
  double total = 0;
  for (int64_t g = 0; g < spec.groups; ++g) {
    auto deltas = torch::empty({per, spec.d}, torch::kFloat32);
    float* p = deltas.data_ptr<float>();
    for (int64_t i = 0; i < per * spec.d; ++i)
      p[i] = spec.w[g * per * spec.d + i] - deq[static_cast<size_t>(g * per * spec.d + i)];
    for (double v : output_errors(*spec.stats, g, deltas)) total += v;
  }
  return total;
}

}  // namespace mpq::quant
