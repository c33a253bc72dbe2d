#include "mpq/ptq/calibrate.h"

#include <map>
#include <random>

#include "mpq/eval/task.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::ptq {
using model::LayerInfo;

namespace {

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
    if (L.kind != model::LayerKind::kConv2d) {
      accumulate(a, x.to(torch::kFloat32).reshape({1, -1, a.d}));
      return x;
    }
    // im2col of a whole batch at 224x224 is large (VGG-16's conv1_2: 64 images x 576 x 50176
    // floats = 7.4 GB, and the regrouping copies it): take a few images at a time, so the
    // patches of one step stay under max_patch_bytes (at least one image). Rows keep their order.
    const int64_t n = x.size(0);
    const int64_t per_image = 4 * a.groups * a.d * (x.size(2) * x.size(3)) /
                              std::max<int64_t>(1, L.stride[0] * L.stride[1]);
    const int64_t step = std::max<int64_t>(1, patch_bytes_ / std::max<int64_t>(1, per_image));
    for (int64_t i0 = 0; i0 < n; i0 += step) {
      auto xi = x.narrow(0, i0, std::min(step, n - i0)).to(torch::kFloat32);
      auto cols =
          at::im2col(xi, {L.kh, L.kw}, {L.dilation[0], L.dilation[1]}, {L.padding[0], L.padding[1]},
                     {L.stride[0], L.stride[1]});  // [n, Cin*kh*kw, P]
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
    if (!a.sampled) {
      a.sigma += torch::bmm(rows.transpose(1, 2), rows).to(torch::kFloat64);
    } else {
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
      if (a.sampled)
        s.data = a.reservoir.narrow(1, 0, std::min(a.capacity, a.rows)).contiguous();
      else
        s.data = (a.sigma / static_cast<double>(a.rows)).to(torch::kFloat32).contiguous();
    }
    return out;
  }

 private:
  const std::vector<LayerInfo>& infos_;
  std::map<int, Acc> acc_;
  int64_t patch_bytes_;
};

}  // namespace

void run_calibration_batches(model::Network& net, const data::Dataset& data,
                             const std::vector<int64_t>& indices, const CalibrationOptions& options,
                             model::LayerInputHook* hook,
                             const std::function<void(int64_t)>& on_batch) {
  model::HookScope scope(hook);
  data::BatchStream stream(data, indices, options.batch_size, options.loader);
  data::Batch b;
  while (stream.next(&b)) {
    if (b.size() > 0) eval::run_batch(net, b);  // outputs unused: the hook sees the layers
    if (on_batch) on_batch(b.size() + b.skipped);
  }
}

std::vector<quant::SecondMoment> collect_statistics(model::Network& net, const data::Dataset& data,
                                                    const std::vector<int64_t>& indices,
                                                    const std::vector<int>& layers,
                                                    const CalibrationOptions& options,
                                                    const std::string& progress_label) {
  StatsHook hook(net.layers(), layers, options);
  Progress bar(progress_label, static_cast<int64_t>(indices.size()));
  run_calibration_batches(net, data, indices, options, &hook, [&](int64_t n) { bar.advance(n); });
  bar.finish();
  return hook.finish(layers.size());
}

}  // namespace mpq::ptq
