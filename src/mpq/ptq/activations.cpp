#include "mpq/ptq/activations.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/fake_quant.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/ranges.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::ptq {
using nlohmann::json;

const char* act_range_name(ActRange r) {
  switch (r) {
    case ActRange::kMax:
      return "max";
    case ActRange::kPercentile:
      return "percentile";
    case ActRange::kMse:
      return "mse";
    case ActRange::kAciqLaplace:
      return "aciq_laplace";
    case ActRange::kAciqGaussian:
      return "aciq_gaussian";
  }
  return "?";
}

ActRange parse_act_range(const std::string& name) {
  for (auto r : {ActRange::kMax, ActRange::kPercentile, ActRange::kMse, ActRange::kAciqLaplace,
                 ActRange::kAciqGaussian})
    if (name == act_range_name(r)) return r;
  throw ConfigError("/activations/range: unknown range '" + name + "'");
}

namespace {

// Min, max and a seeded sample of every observed layer's input values.
class RangeObserver : public model::LayerInputHook {
 public:
  RangeObserver(const std::vector<bool>& observe, int64_t per_batch, uint64_t seed)
      : observe_(observe),
        per_batch_(per_batch),
        rng_(seed),
        mins_(observe.size(), 1e300),
        maxs_(observe.size(), -1e300),
        samples_(observe.size()) {}

  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    auto i = static_cast<size_t>(layer);
    if (!observe_[i]) return x;
    auto flat = x.detach().to(torch::kFloat32).contiguous().view({-1});
    mins_[i] = std::min(mins_[i], flat.min().item<double>());
    maxs_[i] = std::max(maxs_[i], flat.max().item<double>());
    const float* p = flat.data_ptr<float>();
    int64_t n = flat.numel();
    auto& s = samples_[i];
    if (n <= per_batch_) {
      s.insert(s.end(), p, p + n);
    } else {
      std::uniform_int_distribution<int64_t> pick(0, n - 1);
      for (int64_t k = 0; k < per_batch_; ++k) s.push_back(p[pick(rng_)]);
    }
    return x;
  }

  std::vector<bool> observe_;
  int64_t per_batch_;
  std::mt19937_64 rng_;
  std::vector<double> mins_, maxs_;
  std::vector<std::vector<float>> samples_;
};

double choose_alpha(ActRange range, double percentile, const std::vector<float>& sample,
                    double max_abs, bool is_unsigned, int64_t qmax) {
  const int L = static_cast<int>(qmax);
  const int64_t n = static_cast<int64_t>(sample.size());
  if (range == ActRange::kMax) return max_abs;
  if (range == ActRange::kPercentile) return quant::abs_percentile(sample.data(), n, percentile);
  if (range == ActRange::kMse) {
    // The exact search visits ~|x|/step breakpoints per value above the optimum (hundreds at
    // 8 bits): an evenly strided subsample of kMseSample values keeps it fast; the optimum of
    // a clip is stable at that size.
    constexpr int64_t kMseSample = 16384;
    int64_t stride = std::max<int64_t>(1, n / kMseSample);
    std::vector<double> v;
    for (int64_t i = 0; i < n; i += stride) v.push_back(sample[static_cast<size_t>(i)]);
    return quant::exact_step_search(v.data(), static_cast<int64_t>(v.size()), L, nullptr, nullptr)
               .step *
           L;
  }
  quant::Prior prior =
      range == ActRange::kAciqGaussian ? quant::Prior::kGaussian : quant::Prior::kLaplace;
  std::vector<float> fit;
  if (is_unsigned) {
    for (float v : sample)
      if (v > 0) fit.push_back(v);
  } else {
    fit = sample;
  }
  double scale = quant::fit_prior_scale(prior, fit.data(), static_cast<int64_t>(fit.size()));
  return std::min(max_abs, quant::aciq_alpha(prior, scale, L, is_unsigned));
}

}  // namespace

std::vector<ActQuant> calibrate_activations(model::Network& net, const ActivationConfig& config,
                                            const CalibrationContext& calib,
                                            const std::vector<bool>& weight_quantized) {
  const auto& infos = net.layers();
  const int count = static_cast<int>(infos.size());
  std::vector<ActQuant> out(infos.size());
  if (!config.enabled()) return out;
  if (calib.data == nullptr || calib.indices.empty())
    throw ConfigError("activation quantization needs calibration data (calibration.size > 0)");
  std::vector<bool> observe(infos.size(), false);
  std::vector<int> bits(infos.size(), 0);
  for (int i = 0; i < count; ++i) {
    if (!weight_quantized[static_cast<size_t>(i)]) continue;
    const LayerRule rule = i == 0           ? config.first_layer
                           : i == count - 1 ? config.last_layer
                                            : LayerRule::kQuantize;
    int b = rule == LayerRule::kFp ? 0 : rule == LayerRule::k8Bit ? 8 : config.bits;
    if (b == 0) continue;
    observe[static_cast<size_t>(i)] = true;
    bits[static_cast<size_t>(i)] = b;
  }
  int64_t batches = (static_cast<int64_t>(calib.indices.size()) + calib.options.batch_size - 1) /
                    calib.options.batch_size;
  RangeObserver obs(observe,
                    std::max<int64_t>(1, config.sample_size / std::max<int64_t>(1, batches)),
                    calib.options.seed);
  {
    Progress bar("calibrate activations", static_cast<int64_t>(calib.indices.size()));
    run_calibration_batches(net, *calib.data, calib.indices, calib.options, &obs,
                            [&](int64_t n) { bar.advance(n); });
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    if (!observe[i]) continue;
    ActQuant& q = out[i];
    q.enabled = true;
    q.bits = bits[i];
    q.observed_min = obs.mins_[i];
    q.observed_max = obs.maxs_[i];
    q.is_unsigned = obs.mins_[i] >= 0;
    q.qmin = q.is_unsigned ? 0 : -((int64_t{1} << (q.bits - 1)) - 1);
    q.qmax = q.is_unsigned ? (int64_t{1} << q.bits) - 1 : (int64_t{1} << (q.bits - 1)) - 1;
    double max_abs = std::max(std::fabs(obs.mins_[i]), std::fabs(obs.maxs_[i]));
    double alpha = choose_alpha(config.range, config.percentile, obs.samples_[i], max_abs,
                                q.is_unsigned, q.qmax);
    if (!(alpha > 0)) alpha = max_abs > 0 ? max_abs : 1.0;  // a dead input: any positive scale
    q.scale = alpha / static_cast<double>(q.qmax);
  }
  return out;
}

torch::Tensor ActivationQuantizer::on_input(int layer, const torch::Tensor& x) {
  const ActQuant& q = params_[static_cast<size_t>(layer)];
  if (!q.enabled) return x;
  return quant::fake_quantize(x, q.scale, q.qmin, q.qmax);
}

}  // namespace mpq::ptq
