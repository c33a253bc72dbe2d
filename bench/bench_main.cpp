// mpq_bench: the benchmarks named in the issues, printed as tables (scripts/bench.sh runs them
// all). Timings are wall-clock medians of repeated runs on this machine; compare ratios measured
// in one run, never absolute numbers across machines.
//
//   mpq_bench resnet18   quantize every weight of ResNet-18-shaped layers (random weights,
//                        synthetic calibration statistics) at 4 bits, 1 point + 10% extra
//   mpq_bench gptq [act_order]   GPTQ (quant/gptq.h) of the same ResNet-18 shapes and statistics
//   mpq_bench adaround [ITERATIONS]   AdaRound (quant/adaround.h) of the same shapes, per layer
//   mpq_bench adaround_data [ITERATIONS] [INPUTS] [BATCH]   AdaRound's data objective on the same
//                                     shapes at 224x224 (synthetic inputs): per-iteration and
//                                     fixed cost per layer, memory
//   mpq_bench search     exact coefficient search vs a 1024-candidate grid: error and speed
//   mpq_bench calib [MODEL.pt...]   calibration statistics vs one FP forward pass on the same
//                        images, and per layer against the FLOP floor (plus the given archives)
//   mpq_bench latency [MODEL.pt...]   expanded (deployable) model vs original, forward latency
//                        (default models, plus the given archives on 3x224x224 inputs)
//   mpq_bench int8 [MODEL.pt...]   fp32 vs single-point int8 vs multipoint int8 latency
//                        (LibTorch quantized kernels; default models plus the given archives)
//   mpq_bench forward MODEL.pt IMAGES BATCH THREADS [ENGINE]   images/s of forward passes of the
//                        prepared network on seeded random batches of its input shape, on the
//                        evaluation engine ENGINE (auto (default), optimized, hooked;
//                        model/inference.h; the engine used goes to stderr)
//   mpq_bench eval       evaluation throughput of the default models (images/s)
//   mpq_bench map [PER_IMAGE]   VOC mAP (both definitions) of 5000 images x 20 classes x
//                        PER_IMAGE detections per image (default 100)
//   mpq_bench nms        own torchvision::nms on 10000 random boxes (bench/bench_detection.sh
//                        times torchvision's on the same boxes)
//   mpq_bench data DIR WORKERS...   decode + preprocess (torchvision-v1) images/s of an image
//                        folder through the threaded loader, and the same images read back
//                        from the preprocessed-image cache (bench/bench_data.sh compares with
//                        a torchvision DataLoader)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "mpq/data/calibration.h"
#include "mpq/data/factory.h"
#include "mpq/data/fashion_mnist.h"
#include "mpq/data/loader.h"
#include "mpq/eval/classification.h"
#include "mpq/eval/voc_ap.h"
#include "mpq/model/expand.h"
#include "mpq/model/inference.h"
#include "mpq/model/network.h"
#include "mpq/model/nms.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/calibrate.h"
#include "mpq/ptq/quantize.h"
#include "mpq/quant/adaround.h"
#include "mpq/quant/allocation.h"
#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "mpq/quant/gptq.h"
#include "mpq/quant/multipoint_layer.h"
#include "mpq/store/image_cache.h"
#include "mpq/train/train.h"
#include "mpq/util/progress.h"
#include "mpq/util/threads.h"

using namespace mpq;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

template <typename F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = Clock::now();
    f();
    t.push_back(secs(a));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// --- resnet18 -------------------------------------------------------------------------------

struct Shape {
  int64_t c_out, c_in, k, hw_out;  // hw_out: output spatial size at 224x224 input
};

// torchvision ResNet-18's layer shapes with random Kaiming-scaled weights and synthetic
// statistics (Σ from 1024 random non-negative input rows per layer).
struct Resnet18Layers {
  std::vector<Shape> shapes;
  std::vector<torch::Tensor> weights;
  std::vector<quant::SecondMoment> stats;
  int64_t params = 0;
};

Resnet18Layers resnet18_layers() {
  // torchvision ResNet-18: conv1, 4 stages of 2 BasicBlocks, 3 downsample 1x1 convs, fc.
  std::vector<Shape> shapes = {{64, 3, 7, 112}};
  std::vector<torch::Tensor> weights;
  std::vector<quant::SecondMoment> stats;
  int64_t params = 0;
  for (int i = 0; i < 4; ++i) shapes.push_back({64, 64, 3, 56});
  shapes.push_back({128, 64, 3, 28});
  for (int i = 0; i < 3; ++i) shapes.push_back({128, 128, 3, 28});
  shapes.push_back({128, 64, 1, 28});
  shapes.push_back({256, 128, 3, 14});
  for (int i = 0; i < 3; ++i) shapes.push_back({256, 256, 3, 14});
  shapes.push_back({256, 128, 1, 14});
  shapes.push_back({512, 256, 3, 7});
  for (int i = 0; i < 3; ++i) shapes.push_back({512, 512, 3, 7});
  shapes.push_back({512, 256, 1, 7});
  shapes.push_back({1000, 512, 1, 1});
  torch::manual_seed(0);
  std::printf(
      "setting up %zu layers (random weights, synthetic statistics from 1024 random input "
      "rows)...\n",
      shapes.size());
  for (const auto& s : shapes) {
    int64_t d = s.c_in * s.k * s.k;
    weights.push_back(torch::randn({s.c_out, d}) * std::sqrt(2.0 / static_cast<double>(d)));
    params += s.c_out * d;
    auto x = torch::randn({1024, d}).abs_();  // post-ReLU-like inputs
    quant::SecondMoment m;
    m.groups = 1;
    m.d = d;
    m.data = (x.t().mm(x) / 1024.0).unsqueeze(0).contiguous();
    m.rows_seen = 1024;
    stats.push_back(m);
  }
  return {shapes, weights, stats, params};
}

int bench_resnet18(int max_points) {
  auto [shapes, weights, stats, params] = resnet18_layers();
  double rss_before = peak_rss_mb();
  auto t0 = Clock::now();
  std::vector<quant::LayerCandidates> cands;
  std::vector<quant::LayerTables> tables;
  for (size_t i = 0; i < shapes.size(); ++i) {
    quant::LayerQuantSpec spec;
    spec.w = weights[i].data_ptr<float>();
    spec.c_out = shapes[i].c_out;
    spec.d = weights[i].size(1);
    spec.bits = 4;
    spec.max_points = max_points;
    spec.stats = &stats[i];
    spec.point_cost_macs = static_cast<double>(spec.d * shapes[i].hw_out * shapes[i].hw_out);
    cands.push_back(quant::LayerCandidates::build(spec));
    tables.push_back(cands.back().tables());
  }
  double t_build = secs(t0);
  quant::AllocationOptions o;
  o.max_points = max_points;
  o.budget = 0.10;
  auto a = quant::allocate(tables, o);
  int64_t points = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto q =
        cands[i].finalize(a.points[i], a.grant_order[i], quant::Refit::kNone, nullptr, nullptr);
    points += q.total_points();
  }
  double total = secs(t0);
  std::printf(
      "ResNet-18 shapes: %zu layers, %.2fM weights, 4 bits, max_points %d, budget 10%% of "
      "channels\n",
      shapes.size(), static_cast<double>(params) / 1e6, max_points);
  std::printf("  candidates (greedy points + output-error tables): %.2f s\n", t_build);
  std::printf("  total incl. allocation and packing:               %.2f s  (goal <= 10 s)\n",
              total);
  std::printf(
      "  extra points granted: %lld; peak RSS %.0f MB (%.0f MB before quantizing: weights + "
      "statistics)\n",
      static_cast<long long>(a.granted), peak_rss_mb(), rss_before);
  return 0;
}

// --- gptq ------------------------------------------------------------------------------------

int bench_gptq(bool act_order) {
  auto [shapes, weights, stats, params] = resnet18_layers();
  std::vector<quant::GptqLayer> in;
  for (size_t i = 0; i < shapes.size(); ++i) {
    quant::GptqLayer g;
    g.w = weights[i].data_ptr<float>();
    g.c_out = shapes[i].c_out;
    g.d = weights[i].size(1);
    g.stats = &stats[i];
    in.push_back(g);
  }
  quant::GptqOptions o;
  o.act_order = act_order;
  double rss_before = peak_rss_mb();
  auto t0 = Clock::now();
  auto res = quant::quantize_gptq_layers(in, o);
  double t = secs(t0);
  double e = 0, e_rtn = 0;
  for (const auto& r : res)
    for (size_t c = 0; c < r.output_error.size(); ++c) {
      e += r.output_error[c] / std::max(1e-300, r.output_energy[c]);
      e_rtn += r.rtn_output_error[c] / std::max(1e-300, r.output_energy[c]);
    }
  std::printf("GPTQ of ResNet-18 shapes: %zu layers, %.2fM weights, 4 bits per channel, max grid, "
              "damp 0.01, act_order %d, block 128\n",
              shapes.size(), static_cast<double>(params) / 1e6, act_order ? 1 : 0);
  std::printf("  total: %.2f s  (goal <= 10 s); mean relative output error GPTQ / RTN = %.3f\n", t,
              e / e_rtn);
  std::printf("  peak RSS %.0f MB (%.0f MB before quantizing: weights + statistics)\n",
              peak_rss_mb(), rss_before);
  return 0;
}

// --- adaround --------------------------------------------------------------------------------

int bench_adaround(int64_t iterations) {
  auto [shapes, weights, stats, params] = resnet18_layers();
  quant::AdaroundOptions o;
  o.iterations = iterations;
  std::printf("AdaRound of ResNet-18 shapes from Σ: %zu layers, %.2fM weights, 4 bits per channel, "
              "MSE grid, %lld iterations (the paper: 10000)\n",
              shapes.size(), static_cast<double>(params) / 1e6, static_cast<long long>(iterations));
  std::printf("| layer | c_out x d | seconds | ms / iteration | output error / RTN's |\n");
  std::printf("|---:|---|---:|---:|---:|\n");
  double rss_before = peak_rss_mb(), total = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto t0 = Clock::now();
    auto r = quant::adaround_layer(weights[i].data_ptr<float>(), shapes[i].c_out,
                                   weights[i].size(1), 1, 4, quant::Granularity::kPerChannel,
                                   stats[i], o);
    double t = secs(t0);
    total += t;
    double e = 0, e_rtn = 0;
    for (size_t c = 0; c < r.output_error.size(); ++c) {
      e += r.output_error[c];
      e_rtn += r.rtn_output_error[c];
    }
    std::printf("| %zu | %lld x %lld | %.2f | %.2f | %.3f |\n", i,
                static_cast<long long>(shapes[i].c_out), static_cast<long long>(weights[i].size(1)),
                t, 1e3 * t / static_cast<double>(iterations), e / e_rtn);
  }
  std::printf("total %.1f s for %lld iterations per layer = %.1f ms per iteration of all layers; "
              "peak RSS %.0f MB (%.0f MB before: weights + statistics)\n",
              total, static_cast<long long>(iterations),
              1e3 * total / static_cast<double>(iterations), peak_rss_mb(), rss_before);
  return 0;
}

// --- adaround_data ---------------------------------------------------------------------------

// AdaRound's data objective on ResNet-18's layers at ImageNet resolution: `n` synthetic
// calibration inputs per layer (post-ReLU-like x, x~ = x + noise), minibatches of `batch`. Each
// layer runs twice, with 1 and with `iterations` iterations: the difference gives the cost of
// one iteration, the first run the fixed cost (target, final objective, guard over all inputs).
int bench_adaround_data(int64_t iterations, int64_t n, int64_t batch) {
  auto [shapes, weights, stats, params] = resnet18_layers();
  if (iterations < 2 || n < 1 || batch < 1) {
    std::fprintf(stderr, "usage: mpq_bench adaround_data [ITERATIONS >= 2] [INPUTS] [BATCH]\n");
    return 2;
  }
  std::printf(
      "AdaRound, data objective, on ResNet-18 shapes at 224x224: %zu layers, %.2fM weights, "
      "4 bits per channel, MSE grid, %lld inputs per layer, minibatches of %lld, %d threads\n",
      shapes.size(), static_cast<double>(params) / 1e6, static_cast<long long>(n),
      static_cast<long long>(batch), default_threads());
  std::printf(
      "| layer | c_out x d | input | f_a | inputs + target MB | fixed s | ms / iteration | "
      "data objective / RTN's |\n|---:|---|---|---|---:|---:|---:|---:|\n");
  const double rss_before = peak_rss_mb();
  double per_iteration = 0, fixed = 0, largest_mb = 0;
  int block_conv = 0;  // position in a BasicBlock: its first conv has ReLU after it
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& sh = shapes[i];
    const bool fc = i + 1 == shapes.size();
    quant::LayerOp op;
    int64_t hw = sh.hw_out;
    torch::Tensor w = weights[i];
    if (fc) {
      op.conv = false;
    } else {
      w = w.view({sh.c_out, sh.c_in, sh.k, sh.k});
      const bool strided = i == 0 || sh.c_in != sh.c_out;
      op.stride = strided ? std::vector<int64_t>{2, 2} : std::vector<int64_t>{1, 1};
      op.padding = {sh.k / 2, sh.k / 2};
      hw = strided ? 2 * sh.hw_out : sh.hw_out;
      const bool downsample = sh.k == 1;
      if (i == 0 || (!downsample && block_conv == 0))
        op.activation.kind = quant::OutputActivation::Kind::kRelu;
      if (i > 0 && !downsample) block_conv = 1 - block_conv;
    }
    auto x = fc ? torch::randn({n, sh.c_in}).relu_() : torch::randn({n, sh.c_in, hw, hw}).relu_();
    auto xq = x + 0.05 * torch::randn_like(x);
    const auto bias = torch::zeros({sh.c_out});
    const int64_t out_hw = fc ? 1 : sh.hw_out;
    const double mb = 4.0 * static_cast<double>(n) *
                      (2.0 * static_cast<double>(x[0].numel()) +
                       static_cast<double>(sh.c_out * out_hw * out_hw)) /
                      1e6;
    largest_mb = std::max(largest_mb, mb);
    quant::AdaroundOptions o;
    o.objective = quant::AdaroundObjective::kData;
    o.batch_size = batch;
    o.iterations = 1;
    if (i == 0)  // untimed: the kernels' first use (oneDNN primitive creation)
      quant::adaround_layer_data(w, bias, op, {x, xq}, 4, quant::Granularity::kPerChannel, stats[i],
                                 o);
    auto t0 = Clock::now();
    quant::adaround_layer_data(w, bias, op, {x, xq}, 4, quant::Granularity::kPerChannel, stats[i],
                               o);
    const double t1 = secs(t0);
    o.iterations = iterations;
    t0 = Clock::now();
    auto r = quant::adaround_layer_data(w, bias, op, {x, xq}, 4, quant::Granularity::kPerChannel,
                                        stats[i], o);
    const double tk = secs(t0);
    const double it = std::max(0.0, (tk - t1) / static_cast<double>(iterations - 1));
    per_iteration += it;
    fixed += std::max(0.0, t1 - it);
    std::printf("| %zu | %lld x %lld | %s%lldx%lld | %s | %.0f | %.2f | %.1f | %.3f |\n", i,
                static_cast<long long>(sh.c_out), static_cast<long long>(weights[i].size(1)),
                fc ? "" : (std::to_string(sh.c_in) + "x").c_str(), static_cast<long long>(hw),
                static_cast<long long>(fc ? sh.c_in : hw), op.activation.name().c_str(), mb,
                std::max(0.0, t1 - it), 1e3 * it, r.data_error / r.data_rtn_error);
  }
  std::printf(
      "all layers: %.0f ms per iteration, %.1f s fixed; at 10000 iterations %.2f h; "
      "largest inputs + target %.0f MB; peak RSS %.0f MB (%.0f MB before: weights + "
      "statistics)\n",
      1e3 * per_iteration, fixed, (1e4 * per_iteration + fixed) / 3600.0, largest_mb, peak_rss_mb(),
      rss_before);
  return 0;
}

// --- search ---------------------------------------------------------------------------------

int bench_search() {
  std::printf(
      "| bits | d | vectors | exact error / grid-1024 error (mean, max) | exact ms | grid ms | "
      "speed ratio |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  std::mt19937_64 rng(1);
  std::normal_distribution<double> n(0, 1);
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t d : {int64_t{64}, int64_t{576}, int64_t{4608}}) {
      int count = d >= 4608 ? 64 : 256;
      std::vector<std::vector<double>> vs(static_cast<size_t>(count),
                                          std::vector<double>(static_cast<size_t>(d)));
      for (auto& v : vs)
        for (auto& x : v) x = n(rng);
      int L = quant::max_level(bits);
      std::vector<double> ex(static_cast<size_t>(count)), gr(static_cast<size_t>(count));
      double te = median_seconds(3, [&] {
        for (int i = 0; i < count; ++i)
          ex[static_cast<size_t>(i)] =
              quant::exact_step_search(vs[static_cast<size_t>(i)].data(), d, L, nullptr, nullptr)
                  .error;
      });
      double tg = median_seconds(3, [&] {
        for (int i = 0; i < count; ++i)
          gr[static_cast<size_t>(i)] = quant::grid_step_search(vs[static_cast<size_t>(i)].data(), d,
                                                               L, 1024, nullptr, nullptr)
                                           .error;
      });
      double mean = 0, mx = 0;
      for (int i = 0; i < count; ++i) {
        double r = ex[static_cast<size_t>(i)] / gr[static_cast<size_t>(i)];
        mean += r / count;
        mx = std::max(mx, r);
      }
      std::printf("| %d | %lld | %d | %.4f, %.4f | %.3f | %.3f | %.1fx |\n", bits,
                  static_cast<long long>(d), count, mean, mx, 1e3 * te / count, 1e3 * tg / count,
                  tg / te);
    }
  }
  return 0;
}

// --- models ---------------------------------------------------------------------------------

std::string default_model(const std::string& arch) {
  return train::resolve_model_ref("default:" + arch, "results/models",
                                  data::kFashionMnistDefaultRoot);
}

// Captures every layer's input of one forward pass.
class InputCapture : public model::LayerInputHook {
 public:
  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    if (static_cast<size_t>(layer) >= inputs.size()) inputs.resize(static_cast<size_t>(layer) + 1);
    if (!inputs[static_cast<size_t>(layer)].defined())
      inputs[static_cast<size_t>(layer)] = x.clone();
    return x;
  }
  std::vector<torch::Tensor> inputs;
};

int bench_calib_per_layer(const std::string& name, const std::string& path,
                          const torch::Tensor& images);

int bench_calib(const std::vector<std::string>& extra_models) {
  auto train = data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTrain);
  auto idx = data::calibration_indices(train->size(), 256, 0);
  std::printf(
      "| model | N | FP forward (s) | statistics, all layers (s) | ratio "
      "|\n|---|---:|---:|---:|---:|\n");
  for (std::string arch : {"resnet20", "mobilenetv2"}) {
    auto net = model::Network::load(default_model(arch));
    std::vector<int> layers;
    for (const auto& L : net.layers()) layers.push_back(L.index);
    ptq::CalibrationOptions o;
    double tf = median_seconds(5, [&] {
      for (size_t b = 0; b < idx.size(); b += 64) {
        std::vector<int64_t> part(idx.begin() + static_cast<long>(b),
                                  idx.begin() + static_cast<long>(std::min(idx.size(), b + 64)));
        net.forward(data::load_batch(*train, part).images);
      }
    });
    double ts = median_seconds(5, [&] { ptq::collect_statistics(net, *train, idx, layers, o); });
    std::printf("| %s | %zu | %.3f | %.3f | %.1fx |\n", arch.c_str(), idx.size(), tf, ts, ts / tf);
  }
  std::printf("\n");
  for (std::string arch : {"resnet20", "mobilenetv2"}) {
    std::vector<int64_t> part(idx.begin(), idx.begin() + 64);
    bench_calib_per_layer(arch, default_model(arch), data::load_batch(*train, part).images);
  }
  for (const auto& p : extra_models) {
    torch::manual_seed(0);
    bench_calib_per_layer(std::filesystem::path(p).stem().string(), p,
                          torch::randn({16, 3, 224, 224}));
  }
  return 0;
}

// Per layer: the layer's forward (conv/linear on its captured input) and the statistics of the
// same input (ptq::accumulate_moments), against the FLOP floor d / (C_out / groups) forward passes.
int bench_calib_per_layer(const std::string& name, const std::string& path,
                          const torch::Tensor& images) {
  auto net = model::Network::load(path);
  InputCapture cap;
  {
    model::HookScope scope(&cap);
    net.forward(images);
  }
  std::printf(
      "%s, batch of %lld images:\n\n| layer | d | C_out/G | forward ms | floor = forward x "
      "d/(C_out/G) ms | "
      "statistics before ms | statistics ms | before / floor | statistics / floor |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      name.c_str(), static_cast<long long>(images.size(0)));
  double sum_fwd = 0, sum_floor = 0, sum_stats = 0, sum_before = 0, worst = 0;
  torch::NoGradGuard ng;
  for (const auto& L : net.layers()) {
    const auto& x = cap.inputs[static_cast<size_t>(L.index)];
    const auto& w = net.fp_weight(L.index);
    const auto& b = net.fp_bias(L.index);
    const bool conv = L.kind == model::LayerKind::kConv2d;
    const int64_t G = conv ? L.groups : 1;
    auto forward = [&] {
      return conv ? torch::conv2d(x, w, b, L.stride, L.padding, L.dilation, L.groups)
                  : torch::linear(x, w, b);
    };
    forward();
    double tf = median_seconds(7, forward);
    auto sigma = torch::zeros({G, L.d(), L.d()}, torch::kFloat64);
    ptq::accumulate_moments(L, x, sigma, ptq::CalibrationOptions{}.max_patch_bytes);
    double ts = median_seconds(7, [&] {
      ptq::accumulate_moments(L, x, sigma, ptq::CalibrationOptions{}.max_patch_bytes);
    });
    // Before (stop 15): all patches of a step copied into row order, one batched GEMM (full d x d).
    auto before = [&] {
      if (!conv) {
        auto rows = x.reshape({1, -1, L.d()});
        sigma += torch::bmm(rows.transpose(1, 2), rows).to(torch::kFloat64);
        return;
      }
      auto cols = at::im2col(x, {L.kh, L.kw}, {L.dilation[0], L.dilation[1]},
                             {L.padding[0], L.padding[1]}, {L.stride[0], L.stride[1]});
      const int64_t n = cols.size(0), P = cols.size(2);
      auto r = cols.view({n, G, L.d(), P}).permute({1, 0, 3, 2}).reshape({G, n * P, L.d()});
      sigma += torch::bmm(r.transpose(1, 2), r).to(torch::kFloat64);
    };
    double tb = median_seconds(7, before);
    const double ratio = static_cast<double>(L.d()) / static_cast<double>(L.c_out / G);
    const double floor = tf * ratio;
    sum_fwd += tf;
    sum_floor += floor;
    sum_stats += ts;
    sum_before += tb;
    worst = std::max(worst, ts / floor);
    std::printf("| %s | %lld | %lld | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f |\n", L.name.c_str(),
                static_cast<long long>(L.d()), static_cast<long long>(L.c_out / G), 1e3 * tf,
                1e3 * floor, 1e3 * tb, 1e3 * ts, tb / floor, ts / floor);
  }
  std::printf("| all layers | | | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f (worst layer %.2f) |\n\n",
              1e3 * sum_fwd, 1e3 * sum_floor, 1e3 * sum_before, 1e3 * sum_stats,
              sum_before / sum_floor, sum_stats / sum_floor, worst);
  return 0;
}

// Random 8-bit images of one shape with the given normalization: calibration data for models
// whose real data is not on this machine (latency does not depend on what the images show).
class RandomImages final : public data::Dataset {
 public:
  RandomImages(int64_t n, std::vector<int64_t> shape, data::Preprocess pre)
      : shape_(std::move(shape)), pre_(std::move(pre)) {
    torch::manual_seed(0);
    x_ = torch::randint(0, 256, {n, shape_[0] * shape_[1] * shape_[2]}, torch::kUInt8);
  }
  int64_t size() const override { return x_.size(0); }
  std::vector<int64_t> image_shape() const override { return shape_; }
  int64_t num_classes() const override { return 1000; }
  std::vector<std::string> class_names() const override { return std::vector<std::string>(1000); }
  void read_image(int64_t i, data::ImageData* out) const override {
    const uint8_t* p = x_.data_ptr<uint8_t>() + i * x_.size(1);
    *out = {shape_[0], shape_[1], shape_[2], std::vector<uint8_t>(p, p + x_.size(1))};
  }
  int64_t label(int64_t) const override { return 0; }
  const data::Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return "bench-random-images"; }
  std::string describe() const override { return "random images"; }
  nlohmann::json manifest() const override { return nlohmann::json::object(); }

 private:
  std::vector<int64_t> shape_;
  data::Preprocess pre_;
  torch::Tensor x_;
};

// Median latencies of two models measured alternately (so both see the same machine load).
std::pair<double, double> paired_latency(torch::jit::Module& a, torch::jit::Module& b,
                                         const torch::Tensor& x) {
  torch::NoGradGuard ng;
  for (int i = 0; i < 3; ++i) {  // warm-up (profiling executor)
    a.forward({x});
    b.forward({x});
  }
  auto t0 = Clock::now();
  a.forward({x});
  const double one = secs(t0);
  const int reps = std::clamp(static_cast<int>(2.0 / std::max(one, 1e-5)), 7, 201);
  std::vector<double> ta, tb;
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    a.forward({x});
    ta.push_back(secs(t));
    t = Clock::now();
    b.forward({x});
    tb.push_back(secs(t));
  }
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  return {ta[ta.size() / 2], tb[tb.size() / 2]};
}

// The models of the latency and int8 benchmarks: the default models (calibrated and fed with
// Fashion-MNIST, batches 1/32/256) and `extra_models` (random 3x224x224 images, batches 1/32).
struct ModelCase {
  std::string name, path;
  std::shared_ptr<const data::Dataset> calib;
  std::vector<int64_t> batches;
  bool fashion_mnist = false;
};

std::vector<ModelCase> model_cases(const std::vector<std::string>& extra_models,
                                   std::shared_ptr<const data::Dataset> train) {
  std::vector<ModelCase> cases;
  for (std::string arch : {"resnet20", "mobilenetv2"})
    cases.push_back({arch, default_model(arch), train, {1, 32, 256}, true});
  auto tv = std::make_shared<RandomImages>(64, std::vector<int64_t>{3, 224, 224},
                                           data::preprocess_preset("torchvision-v1"));
  for (const auto& p : extra_models)
    cases.push_back({std::filesystem::path(p).stem().string(), p, tv, {1, 32}, false});
  return cases;
}

// Up to 256 calibration images of the case, statistics cached by the archive's SHA-256.
ptq::CalibrationContext bench_calibration(const ModelCase& cs, const std::string& model_sha256) {
  ptq::CalibrationContext cc;
  cc.data = cs.calib.get();
  cc.indices =
      data::calibration_indices(cs.calib->size(), std::min<int64_t>(256, cs.calib->size()), 0);
  cc.cache_dir = "/tmp/mpq_bench_stats";
  cc.cache_description = {{"model", model_sha256}, {"data", cs.calib->fingerprint()}};
  return cc;
}

// A timing input of the case: the first test images, or seeded random 3x224x224.
torch::Tensor case_input(const ModelCase& cs, const data::Dataset& test, int64_t batch) {
  if (cs.fashion_mnist) return data::load_batch(test, data::index_range(0, batch)).images;
  torch::manual_seed(1);
  return torch::randn({batch, 3, 224, 224});
}

// Extra output channels and extra MACs of a quantized network, as fractions.
struct Overheads {
  double channels = 0, macs = 0;
};
Overheads overheads(const model::Network& net, const ptq::NetworkQuantization& nq) {
  int64_t C = 0, P = 0;
  double macs = 0, extra = 0;
  for (size_t i = 0; i < nq.layers.size(); ++i) {
    const auto& o = nq.layers[i];
    macs += static_cast<double>(net.layers()[i].macs);
    if (!o.quantized) continue;
    C += o.q.c_out;
    P += o.q.total_points();
    extra += quant::extra_macs(o.q, static_cast<double>(net.layers()[i].macs));
  }
  return {static_cast<double>(P - C) / static_cast<double>(C), extra / macs};
}

// Expanded (deployable) model vs the original archive: default models on Fashion-MNIST, and any
// further archives (e.g. torchvision models, bench/bench_latency.sh) on random 3x224x224 images.
int bench_latency(const std::vector<std::string>& extra_models) {
  auto test = data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTest);
  std::shared_ptr<const data::Dataset> train =
      data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTrain);
  const auto cases = model_cases(extra_models, train);
  std::printf(
      "| model | budget | extra channels | extra MACs | batch | original ms | expanded ms | "
      "ratio | (ratio - 1) / extra MACs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& cs : cases) {
    auto original = torch::jit::load(cs.path);
    original.eval();
    // Budgets of 0/10/25% extra output channels, and 10% extra MACs.
    for (auto [budget, unit] :
         std::vector<std::pair<double, quant::BudgetUnit>>{{0.0, quant::BudgetUnit::kChannels},
                                                           {0.10, quant::BudgetUnit::kChannels},
                                                           {0.25, quant::BudgetUnit::kChannels},
                                                           {0.10, quant::BudgetUnit::kMacs}}) {
      auto net = model::Network::load(cs.path);
      ptq::WeightConfig w;
      w.method = ptq::WeightMethod::kMultipoint;
      w.granularity = quant::Granularity::kPerLayer;
      w.allocation.budget = budget;
      w.allocation.unit = unit;
      auto nq = ptq::quantize_network(net, w, bench_calibration(cs, net.sha256()));
      std::vector<const quant::QuantizedLayer*> qs;
      for (const auto& o : nq.layers) qs.push_back(o.quantized ? &o.q : nullptr);
      const Overheads ov = overheads(net, nq);
      std::string out = "/tmp/mpq_bench_" + cs.name + "_expanded.pt";
      model::export_expanded(net, qs, out);
      auto expanded = torch::jit::load(out);
      expanded.eval();
      for (int64_t batch : cs.batches) {
        auto [to, te] = paired_latency(original, expanded, case_input(cs, *test, batch));
        std::printf(
            "| %s | %.0f%% %s | %.1f%% | %.1f%% | %lld | %.2f | %.2f | %.2f | %s |\n",
            cs.name.c_str(), 100 * budget, unit == quant::BudgetUnit::kMacs ? "MACs" : "channels",
            100.0 * ov.channels, 100.0 * ov.macs, static_cast<long long>(batch), 1e3 * to, 1e3 * te,
            te / to,
            ov.macs > 0 ? std::to_string((te / to - 1) / ov.macs).substr(0, 5).c_str() : "-");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

size_t qs_count(const std::string& path) {
  return model::Network::load(path).layers().size();
}

// Models on LibTorch's int8 kernels (model::export_int8): fp32 archive vs single-point int8
// (4-bit round-to-nearest per channel, 8-bit activations) vs multipoint int8 (same, 10% extra
// output channels by output error), latencies measured alternately in one run.
int bench_int8(const std::vector<std::string>& extra_models) {
  model::select_int8_engine();
  auto test = data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTest);
  std::shared_ptr<const data::Dataset> train =
      data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTrain);
  const auto cases = model_cases(extra_models, train);
  std::printf("engine %s\n\n", c10::toString(at::globalContext().qEngine()).c_str());
  std::vector<std::string> rows;
  for (const auto& cs : cases) {
    const auto cc = bench_calibration(cs, model::Network::load(cs.path).sha256());
    auto images = data::load_batch(*cs.calib, cc.indices).images;
    Overheads ov;
    auto export_one = [&](ptq::WeightMethod method, const std::string& out) {
      auto net = model::Network::load(cs.path);
      ptq::ActivationConfig acfg;
      acfg.bits = 8;
      std::vector<bool> all(net.layers().size(), true);
      auto act = ptq::calibrate_activations(net, acfg, cc, all);
      ptq::WeightConfig w;
      w.method = method;
      w.granularity = quant::Granularity::kPerChannel;
      w.allocation.budget = 0.10;
      auto nq = ptq::quantize_network(net, w, cc);
      std::vector<const quant::QuantizedLayer*> qs;
      std::vector<model::ExportActQuant> ea;
      for (size_t i = 0; i < nq.layers.size(); ++i) {
        qs.push_back(nq.layers[i].quantized ? &nq.layers[i].q : nullptr);
        ea.push_back({act[i].enabled, act[i].scale, act[i].qmin, act[i].qmax});
      }
      ov = overheads(net, nq);
      ptq::ActivationQuantizer aq(act);
      auto r = model::export_int8(net, qs, out, ea, &aq, images);
      auto m = torch::jit::load(out);
      m.eval();
      if (cs.fashion_mnist) {  // top-1 on the test split: the simulation vs the int8 model
        int64_t right_sim = 0, right_int8 = 0;
        torch::NoGradGuard ng;
        for (int64_t b = 0; b < test->size(); b += 500) {
          auto batch =
              data::load_batch(*test, data::index_range(b, std::min(b + 500, test->size())));
          torch::Tensor ys;
          {
            model::HookScope scope(&aq);
            ys = net.forward(batch.images);
          }
          auto y8 = m.forward({batch.images}).toTensor();
          right_sim += ys.argmax(1).eq(batch.labels).sum().item<int64_t>();
          right_int8 += y8.argmax(1).eq(batch.labels).sum().item<int64_t>();
        }
        std::printf("%s %s: top-1 simulated %.2f%%, int8 model %.2f%% (%+.2f points)\n",
                    cs.name.c_str(), ptq::weight_method_name(method),
                    100.0 * static_cast<double>(right_sim) / static_cast<double>(test->size()),
                    100.0 * static_cast<double>(right_int8) / static_cast<double>(test->size()),
                    100.0 * static_cast<double>(right_int8 - right_sim) /
                        static_cast<double>(test->size()));
      }
      return std::make_pair(m, r);
    };
    auto [sp, rs] =
        export_one(ptq::WeightMethod::kRtn, "/tmp/mpq_bench_" + cs.name + "_sp_int8.pt");
    auto [mp, rm] =
        export_one(ptq::WeightMethod::kMultipoint, "/tmp/mpq_bench_" + cs.name + "_mp_int8.pt");
    auto fp = torch::jit::load(cs.path);
    fp.eval();
    for (int64_t batch : cs.batches) {
      const torch::Tensor x = case_input(cs, *test, batch);
      // oneDNN in Debian's LibTorch 1.13 fails on some int8 convolutions of torchvision
      // MobileNetV2 with 2 threads at batch >= 32 ("could not create a primitive descriptor
      // for a reorder primitive", also from Python); such rows are measured on qnnpack.
      std::string engine = "onednn";
      double t_fp = 0, t_sp = 0, t_sp2 = 0, t_mp = 0;
      try {
        std::tie(t_fp, t_sp) = paired_latency(fp, sp, x);
        std::tie(t_sp2, t_mp) = paired_latency(sp, mp, x);
      } catch (const std::exception&) {
        engine = "qnnpack";
        at::globalContext().setQEngine(at::QEngine::QNNPACK);
        auto sq = torch::jit::load("/tmp/mpq_bench_" + cs.name + "_sp_int8.pt");
        auto mq = torch::jit::load("/tmp/mpq_bench_" + cs.name + "_mp_int8.pt");
        sq.eval();
        mq.eval();
        std::tie(t_fp, t_sp) = paired_latency(fp, sq, x);
        std::tie(t_sp2, t_mp) = paired_latency(sq, mq, x);
        model::select_int8_engine();
      }
      char row[320];
      std::snprintf(
          row, sizeof row, "| %s | %lld | %s | %.2f | %.2f | %.2f (%.1f%%, %.1f%%) | %.2f | %.2f |",
          cs.name.c_str(), static_cast<long long>(batch), engine.c_str(), 1e3 * t_fp, 1e3 * t_sp,
          1e3 * t_mp, 100 * ov.channels, 100 * ov.macs, t_sp / t_fp, t_mp / t_sp2);
      std::printf("%s\n", row);
      std::fflush(stdout);
      rows.push_back(row);
    }
    std::printf("%s: %d of %zu layers on int8 kernels\n", cs.name.c_str(), rm.int8_layers,
                rm.int8_layers == rs.int8_layers ? qs_count(cs.path) : 0);
  }
  std::printf(
      "\n| model | batch | engine | fp32 ms | single-point int8 ms | multipoint int8 ms (extra "
      "channels, MACs) | int8 / fp32 | multipoint / single-point int8 |\n"
      "|---|---:|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) std::printf("%s\n", r.c_str());
  return 0;
}

// Forward passes only of mpq's prepared (BN-folded) network on seeded random 3x224x224 batches
// (bench/bench_eval_tv.sh compares with the same archive in PyTorch, bench/python_forward.py).
int bench_forward(const std::string& path, int64_t images, int64_t batch, int threads,
                  const std::string& engine) {
  apply_threads(threads);
  auto net = model::Network::load(path);
  torch::manual_seed(0);
  std::vector<int64_t> shape = {batch};
  shape.insert(shape.end(), net.input_shape().begin(), net.input_shape().end());
  auto x = torch::randn(shape);
  model::InferenceScope scope(net, model::parse_eval_engine(engine), {});
  net.forward(x);  // warm-up (profiling executor)
  net.forward(x);
  std::vector<double> rates;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    for (int64_t i = 0; i < images; i += batch) net.forward(x);
    rates.push_back(static_cast<double>(images) / secs(t0));
  }
  std::sort(rates.begin(), rates.end());
  std::printf("%.1f\n", rates[1]);
  std::fprintf(stderr, "engine: %s\n", scope.description().c_str());
  return 0;
}

int bench_eval() {
  auto test = data::load_fashion_mnist(data::kFashionMnistDefaultRoot, data::Split::kTest);
  std::printf("| model | threads | images | seconds | images/s |\n|---|---:|---:|---:|---:|\n");
  for (std::string arch : {"resnet20", "mobilenetv2"}) {
    auto net = model::Network::load(default_model(arch));
    for (int threads : {1, 2}) {
      apply_threads(threads);
      eval::ClassificationEvaluator ev;
      eval::EvalRun o;
      o.batch_size = 500;
      ev.evaluate(net, *test, o);  // warm-up
      std::vector<double> rates;
      for (int r = 0; r < 3; ++r) {
        auto s = ev.evaluate(net, *test, o);
        rates.push_back(static_cast<double>(s.n) / s.seconds);
      }
      std::sort(rates.begin(), rates.end());
      std::printf("| %s | %d | %lld | %.2f | %.0f |\n", arch.c_str(), threads,
                  static_cast<long long>(test->size()),
                  static_cast<double>(test->size()) / rates[1], rates[1]);
    }
  }
  apply_threads(0);
  return 0;
}

// --- data pipeline ----------------------------------------------------------------------------

int bench_data(const std::string& dir, const std::vector<int>& workers) {
  data::DataSpec spec;
  spec.name = "image_folder";
  spec.root = dir;
  spec.preprocess = data::preprocess_preset("torchvision-v1");
  std::shared_ptr<const data::Dataset> ds = data::open_dataset(spec, "");
  const int64_t n = ds->size();
  std::printf("%lld images of %s, batch 64, torchvision-v1 (resize 256, crop 224)\n\n",
              static_cast<long long>(n), dir.c_str());
  std::printf(
      "| workers | decode + preprocess (images/s) | from the cache (images/s) | ratio |\n"
      "|---:|---:|---:|---:|\n");
  const std::string cache_dir = "/tmp/mpq_bench_image_cache";
  auto pass = [&](const data::Dataset& d, int w) {
    data::BatchStream s(d, data::index_range(0, n), 64, {w, 2, false});
    data::Batch b;
    auto t0 = Clock::now();
    int64_t seen = 0;
    while (s.next(&b)) seen += b.images.size(0);
    return static_cast<double>(seen) / secs(t0);
  };
  auto cached = store::cached_images(ds, cache_dir, {2, false});
  for (int w : workers) {
    pass(*ds, w);  // warm the page cache
    double decode = std::max(pass(*ds, w), pass(*ds, w));
    double from_cache = std::max(pass(*cached, w), pass(*cached, w));
    std::printf("| %d | %.0f | %.0f | %.1fx |\n", w, decode, from_cache, from_cache / decode);
  }
  return 0;
}

// --- detection ------------------------------------------------------------------------------

int bench_map(int per_image) {
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int images = 5000, classes = 20;
  std::vector<eval::VocImageTruth> truth(images);
  for (auto& t : truth)
    for (int k = 0; k < 3; ++k) {
      double x = 1 + 300 * u(rng), y = 1 + 300 * u(rng);
      t.boxes.insert(t.boxes.end(), {x, y, x + 20 + 100 * u(rng), y + 20 + 100 * u(rng)});
      t.labels.push_back(static_cast<int>(u(rng) * classes));
      t.difficult.push_back(u(rng) < 0.1);
    }
  std::vector<eval::VocDetection> dets;
  dets.reserve(static_cast<size_t>(images) * per_image);
  for (int im = 0; im < images; ++im)
    for (int k = 0; k < per_image; ++k) {
      eval::VocDetection d;
      d.image = im;
      d.label = static_cast<int>(u(rng) * classes);
      d.score = std::round(u(rng) * 1000) / 1000;  // ties
      const auto& t = truth[static_cast<size_t>(im)];
      const size_t g = static_cast<size_t>(u(rng) * 3);
      for (int c = 0; c < 4; ++c) d.box[c] = t.boxes[4 * g + c] + 8 * (u(rng) - 0.5);
      dets.push_back(d);
    }
  eval::VocApResult r;
  double t = median_seconds(5, [&] { r = eval::voc_ap(dets, truth, classes); });
  std::printf(
      "| images | classes | detections | seconds (median of 5) | mAP07 | mAP12 |\n"
      "|---:|---:|---:|---:|---:|---:|\n| %d | %d | %zu | %.3f | %.4f | %.4f |\n",
      images, classes, dets.size(), t, r.map07, r.map12);
  return 0;
}

int bench_nms() {
  torch::manual_seed(0);
  auto xy = torch::rand({10000, 2}) * 1000, wh = torch::rand({10000, 2}) * 100 + 1;
  auto boxes = torch::cat({xy, xy + wh}, 1), scores = torch::rand({10000});
  torch::Tensor keep;
  double t = median_seconds(9, [&] { keep = model::nms(boxes, scores, 0.5); });
  std::printf("own nms, 10000 boxes, IoU 0.5: %.2f ms (median of 9), %lld kept\n", 1e3 * t,
              static_cast<long long>(keep.numel()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: mpq_bench "
                 "resnet18|gptq|adaround|adaround_data|search|calib|latency|eval|data|map|nms\n");
    return 2;
  }
  set_quiet(true);
  int threads = apply_threads(0);
  std::printf("# mpq_bench %s (%d threads)\n", argv[1], threads);
  std::string what = argv[1];
  if (what == "resnet18") return bench_resnet18(argc > 2 ? std::atoi(argv[2]) : 2);
  if (what == "adaround") return bench_adaround(argc > 2 ? std::atoll(argv[2]) : 100);
  if (what == "adaround_data")
    return bench_adaround_data(argc > 2 ? std::atoll(argv[2]) : 6,
                               argc > 3 ? std::atoll(argv[3]) : 64,
                               argc > 4 ? std::atoll(argv[4]) : 32);
  if (what == "gptq") return bench_gptq(argc > 2 && std::string(argv[2]) == "act_order");
  if (what == "search") return bench_search();
  if (what == "calib") return bench_calib(std::vector<std::string>(argv + 2, argv + argc));
  if (what == "latency") return bench_latency(std::vector<std::string>(argv + 2, argv + argc));
  if (what == "eval") return bench_eval();
  if (what == "forward") {
    if (argc < 6) {
      std::fprintf(
          stderr,
          "usage: mpq_bench forward MODEL.pt IMAGES BATCH THREADS [auto|optimized|hooked]\n");
      return 2;
    }
    return bench_forward(argv[2], std::atoll(argv[3]), std::atoll(argv[4]), std::atoi(argv[5]),
                         argc > 6 ? argv[6] : "auto");
  }
  if (what == "int8") return bench_int8(std::vector<std::string>(argv + 2, argv + argc));
  if (what == "map") return bench_map(argc > 2 ? std::atoi(argv[2]) : 100);
  if (what == "nms") return bench_nms();
  if (what == "data") {
    if (argc < 3) {
      std::fprintf(stderr, "usage: mpq_bench data DIR [WORKERS...]\n");
      return 2;
    }
    std::vector<int> w;
    for (int i = 3; i < argc; ++i) w.push_back(std::atoi(argv[i]));
    if (w.empty()) w = {1, 2};
    return bench_data(argv[2], w);
  }
  std::fprintf(stderr, "mpq_bench: unknown benchmark '%s'\n", argv[1]);
  return 2;
}
