#include "mpq/ptq/calibrate.h"

#include <map>
#include <optional>
#include <random>

#include "mpq/eval/task.h"
#include "mpq/util/blas.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::ptq {
using model::LayerInfo;

namespace {

// im2col patches of a conv input: [n, G*d, P] float32 (rows of group g: g*d .. (g+1)*d).
torch::Tensor unfold(const LayerInfo& L, const torch::Tensor& x) {
  return at::im2col(x.to(torch::kFloat32), {L.kh, L.kw}, {L.dilation[0], L.dilation[1]},
                    {L.padding[0], L.padding[1]}, {L.stride[0], L.stride[1]});
}

// Images per im2col step so that one step's patches stay under max_patch_bytes (at least one):
// the patches of a whole 224x224 batch would take gigabytes (VGG-16's conv1_2: 64 images x 576 x
// 50176 floats = 7.4 GB).
int64_t images_per_step(const LayerInfo& L, const torch::Tensor& x, int64_t G, int64_t d,
                        int64_t max_patch_bytes) {
  const int64_t per_image =
      4 * G * d * (x.size(2) * x.size(3)) / std::max<int64_t>(1, L.stride[0] * L.stride[1]);
  return std::max<int64_t>(1, max_patch_bytes / std::max<int64_t>(1, per_image));
}

// Blocks of at least this d use BLAS (upper_rank_k: fixed column blocks, so the sums do not depend
// on the thread count); smaller ones direct dot products. Either way only the upper triangle is
// accumulated.
constexpr int64_t kSyrkMinD = 32;
// Conv outputs with at least this many positions per image are updated image by image.
constexpr int64_t kSyrkMinPositions = 256;

// Accumulates Σ (float64) or a row reservoir for each observed layer.
class StatsHook : public model::LayerInputHook {
 public:
  StatsHook(const std::vector<LayerInfo>& infos, const std::vector<int>& layers,
            const CalibrationOptions& o)
      : infos_(infos), patch_bytes_(o.max_patch_bytes) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerInfo& L = infos[static_cast<size_t>(layers[i])];
      Acc a;
      a.slot = i;
      // A generator per layer: a layer's sample must not depend on which other layers are
      // collected in the same pass (the cache serves any subset).
      a.rng.seed(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(layers[i]));
      a.groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
      a.d = L.d();
      double full =
          4.0 * static_cast<double>(a.groups) * static_cast<double>(a.d) * static_cast<double>(a.d);
      if (full > static_cast<double>(o.max_bytes_per_layer)) {
        a.sampled = true;
        a.capacity = std::max<int64_t>(1, o.max_bytes_per_layer / (4 * a.groups * a.d));
        a.reservoir = torch::zeros({a.groups, a.capacity, a.d}, torch::kFloat32);
      } else {
        a.sigma = torch::zeros({a.groups, a.d, a.d}, torch::kFloat64);
      }
      acc_.emplace(layers[i], std::move(a));
    }
  }

  struct Acc {
    size_t slot = 0;
    int64_t groups = 1, d = 0, rows = 0, capacity = 0;
    bool sampled = false;
    torch::Tensor sigma, reservoir;
    std::mt19937_64 rng;
  };

  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    auto it = acc_.find(layer);
    if (it == acc_.end()) return x;
    Acc& a = it->second;
    const LayerInfo& L = infos_[static_cast<size_t>(layer)];
    if (!a.sampled) {
      a.rows += accumulate_moments(L, x, a.sigma, patch_bytes_);
      return x;
    }
    if (L.kind != model::LayerKind::kConv2d) {
      accumulate(a, x.to(torch::kFloat32).reshape({1, -1, a.d}));
      return x;
    }
    // Sampled rows: the patches in row order, a few images at a time (see accumulate_moments).
    const int64_t n = x.size(0);
    const int64_t step = images_per_step(L, x, a.groups, a.d, patch_bytes_);
    for (int64_t i0 = 0; i0 < n; i0 += step) {
      auto cols = unfold(L, x.narrow(0, i0, std::min(step, n - i0)));  // [n, G*d, P]
      int64_t ni = cols.size(0), p = cols.size(2);
      accumulate(
          a,
          cols.view({ni, a.groups, a.d, p}).permute({1, 0, 3, 2}).reshape({a.groups, ni * p, a.d}));
    }
    return x;
  }

  /// Adds rows [G, R, d] to the layer's statistics.
  void accumulate(Acc& a, const torch::Tensor& rows) {
    int64_t r = rows.size(1);
    {
      // Reservoir sampling (Algorithm R), same rows kept for every group.
      auto rc = rows.contiguous();
      for (int64_t i = 0; i < r; ++i) {
        int64_t seen = a.rows + i;
        int64_t slot = -1;
        if (seen < a.capacity) {
          slot = seen;
        } else {
          std::uniform_int_distribution<int64_t> pick(0, seen);
          int64_t j = pick(a.rng);
          if (j < a.capacity) slot = j;
        }
        if (slot >= 0) a.reservoir.select(1, slot).copy_(rc.select(1, i));
      }
    }
    a.rows += r;
  }

  std::vector<quant::SecondMoment> finish(size_t count) {
    std::vector<quant::SecondMoment> out(count);
    for (auto& [layer, a] : acc_) {
      quant::SecondMoment& s = out[a.slot];
      s.groups = a.groups;
      s.d = a.d;
      s.rows_seen = a.rows;
      s.sampled_rows = a.sampled;
      if (a.rows == 0)
        throw InputError("layer " + infos_[static_cast<size_t>(layer)].name +
                         " never ran during calibration");
      if (a.sampled) {
        s.data = a.reservoir.narrow(1, 0, std::min(a.capacity, a.rows)).contiguous();
      } else {
        symmetrize_moments(a.sigma);
        s.data = (a.sigma / static_cast<double>(a.rows)).to(torch::kFloat32).contiguous();
      }
    }
    return out;
  }

 private:
  const std::vector<LayerInfo>& infos_;
  std::map<int, Acc> acc_;
  int64_t patch_bytes_;
};

}  // namespace

int64_t accumulate_moments(const LayerInfo& L, const torch::Tensor& x, torch::Tensor& sigma,
                           int64_t max_patch_bytes) {
  const int64_t G = sigma.size(0), d = sigma.size(1);
  torch::NoGradGuard ng;
  if (L.kind != model::LayerKind::kConv2d) {
    auto rows = x.to(torch::kFloat32).reshape({-1, d}).contiguous();
    const int64_t n = rows.size(0);
    auto acc = torch::zeros({d, d}, torch::kFloat32);
    upper_rank_k(rows.data_ptr<float>(), d, n, /*samples_by_features=*/true, acc.data_ptr<float>());
    sigma[0].add_(acc);
    return n;
  }
  const int64_t n = x.size(0);
  const int64_t step = images_per_step(L, x, G, d, max_patch_bytes);
  int64_t rows = 0;
  auto acc = torch::zeros({G, d, d}, torch::kFloat32);  // upper triangles of this call
  float* pa = acc.data_ptr<float>();
  for (int64_t i0 = 0; i0 < n; i0 += step) {
    auto cols = unfold(L, x.narrow(0, i0, std::min(step, n - i0))).contiguous();  // [ni, G*d, P]
    const int64_t ni = cols.size(0), P = cols.size(2);
    rows += ni * P;
    if (d < kSyrkMinD) {
      // Small blocks (depthwise 3x3, stems): the d(d+1)/2 dot products of each group's rows
      // directly, one (group, row) per task: no copy, no BLAS call per tiny block.
      const float* pc = cols.data_ptr<float>();
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t r = 0; r < d; ++r) {
          float* out = pa + (g * d + r) * d;
          for (int64_t i = 0; i < ni; ++i) {
            const float* block = pc + (i * G + g) * d * P;
            const float* ra = block + r * P;
            for (int64_t c = r; c < d; ++c) {
              const float* rb = block + c * P;
              float dot = 0;
#pragma omp simd reduction(+ : dot)
              for (int64_t p = 0; p < P; ++p) dot += ra[p] * rb[p];
              out[c] += dot;
            }
          }
        }
    } else if (P >= kSyrkMinPositions) {
      // Many positions per image: one rank-P update per image and group, straight from im2col.
      const float* pc = cols.data_ptr<float>();
      for (int64_t i = 0; i < ni; ++i)
        for (int64_t g = 0; g < G; ++g)
          upper_rank_k(pc + (i * G + g) * d * P, d, P, /*samples_by_features=*/false,
                       pa + g * d * d);
    } else {
      // Few positions (late layers): rows of all images in one update per group (the copy into
      // row order is small here, and one large update beats ni small ones).
      auto r = cols.view({ni, G, d, P}).permute({1, 0, 3, 2}).reshape({G, ni * P, d}).contiguous();
      const float* pr = r.data_ptr<float>();
      for (int64_t g = 0; g < G; ++g)
        upper_rank_k(pr + g * ni * P * d, d, ni * P, /*samples_by_features=*/true, pa + g * d * d);
    }
  }
  sigma.add_(acc);
  return rows;
}

void symmetrize_moments(torch::Tensor& sigma) {
  auto upper = sigma.triu();
  sigma = upper + upper.triu(1).transpose(1, 2);
}

namespace {

// Passes every layer input to `inner`, and ends the forward pass (by throwing out of the
// mpq::layer_input operator; the TorchScript interpreter rethrows it as a runtime_error) once
// the observed layers have had all their calls.
class StopAfterObserved : public model::LayerInputHook {
 public:
  StopAfterObserved(model::LayerInputHook* inner, const std::vector<model::LayerInfo>& infos,
                    const std::vector<bool>& observed)
      : inner_(inner), observed_(observed) {
    for (size_t i = 0; i < infos.size(); ++i) {
      if (!observed_[i]) continue;
      calls_ += infos[i].calls;
      never_ran_ = never_ran_ || infos[i].calls == 0;
    }
  }
  /// False when an observed layer never ran in the probe (it may still run on real inputs, so
  /// the pass cannot know when it is done): then nothing is stopped.
  bool usable() const { return calls_ > 0 && !never_ran_; }
  void start_batch() {
    remaining_ = calls_;
    stopped_ = false;
  }
  bool stopped() const { return stopped_; }

  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    torch::Tensor out = inner_ ? inner_->on_input(layer, x) : x;
    if (observed_[static_cast<size_t>(layer)] && --remaining_ == 0) {
      stopped_ = true;
      throw std::runtime_error("mpq: the observed layers are done for this batch");
    }
    return out;
  }

 private:
  model::LayerInputHook* inner_;
  const std::vector<bool>& observed_;
  int64_t calls_ = 0, remaining_ = 0;
  bool never_ran_ = false, stopped_ = false;
};

}  // namespace

void run_calibration_batches(model::Network& net, const data::Dataset& data,
                             const std::vector<int64_t>& indices, const CalibrationOptions& options,
                             model::LayerInputHook* hook,
                             const std::function<void(int64_t)>& on_batch,
                             const std::vector<bool>* observed) {
  std::optional<StopAfterObserved> stop;
  if (observed) {
    MPQ_ASSERT(observed->size() == net.layers().size(), "observed layers");
    stop.emplace(hook, net.layers(), *observed);
    if (!stop->usable()) stop.reset();
  }
  model::HookScope scope(stop ? &*stop : hook);
  data::BatchStream stream(data, indices, options.batch_size, options.loader);
  data::Batch b;
  while (stream.next(&b)) {
    if (b.size() > 0) {  // outputs unused: the hook sees the layers
      if (stop) {
        stop->start_batch();
        try {
          eval::run_batch(net, b);
        } catch (const std::exception&) {
          if (!stop->stopped()) throw;
        }
      } else {
        eval::run_batch(net, b);
      }
    }
    if (on_batch) on_batch(b.size() + b.skipped);
  }
}

std::vector<quant::SecondMoment> collect_statistics(model::Network& net, const data::Dataset& data,
                                                    const std::vector<int64_t>& indices,
                                                    const std::vector<int>& layers,
                                                    const CalibrationOptions& options,
                                                    const std::string& progress_label) {
  StatsHook hook(net.layers(), layers, options);
  std::vector<bool> observed(net.layers().size(), false);
  for (int i : layers) observed[static_cast<size_t>(i)] = true;
  Progress bar(progress_label, static_cast<int64_t>(indices.size()));
  run_calibration_batches(
      net, data, indices, options, &hook, [&](int64_t n) { bar.advance(n); }, &observed);
  bar.finish();
  return hook.finish(layers.size());
}

namespace {

// Keeps every input of one layer (a copy: the graph may reuse the buffer).
class CaptureHook : public model::LayerInputHook {
 public:
  explicit CaptureHook(int layer) : layer_(layer) {}
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    if (layer == layer_) parts.push_back(x.detach().to(torch::kFloat32).clone());
    return x;
  }
  std::vector<torch::Tensor> parts;

 private:
  int layer_;
};

}  // namespace

torch::Tensor capture_layer_inputs(model::Network& net, const data::Dataset& data,
                                   const std::vector<int64_t>& indices, int layer,
                                   const CalibrationOptions& options,
                                   const std::string& progress_label) {
  const auto& L = net.layers()[static_cast<size_t>(layer)];
  CaptureHook hook(layer);
  std::vector<bool> observed(net.layers().size(), false);
  observed[static_cast<size_t>(layer)] = true;
  Progress bar(progress_label, static_cast<int64_t>(indices.size()));
  run_calibration_batches(
      net, data, indices, options, &hook, [&](int64_t n) { bar.advance(n); }, &observed);
  bar.finish();
  if (hook.parts.empty())
    throw InputError("layer " + L.name + ": it never ran on the calibration images");
  for (const auto& p : hook.parts)
    if (p.dim() < 2 || p.sizes().slice(1) != hook.parts[0].sizes().slice(1))
      throw InputError("layer " + L.name +
                       ": its calibration inputs differ in shape between calls; AdaRound's "
                       "data objective needs inputs of one shape (use objective \"statistics\")");
  return torch::cat(hook.parts);
}

}  // namespace mpq::ptq
