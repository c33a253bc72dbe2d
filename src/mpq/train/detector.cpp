#include "mpq/train/detector.h"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "mpq/data/loader.h"
#include "mpq/data/voc.h"
#include "mpq/eval/detection.h"
#include "mpq/model/network.h"
#include "mpq/train/train.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/stopwatch.h"
#include "mpq/util/threads.h"

namespace mpq::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Anchors (cx, cy, w, h) -> corner boxes.
torch::Tensor corners(const torch::Tensor& a) {
  auto cx = a.select(1, 0), cy = a.select(1, 1), w = a.select(1, 2), h = a.select(1, 3);
  return torch::stack({cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h}, 1);
}

torch::Tensor iou_matrix(const torch::Tensor& a, const torch::Tensor& b) {  // [A,4] x [G,4]
  auto lt = torch::max(a.unsqueeze(1).narrow(2, 0, 2), b.unsqueeze(0).narrow(2, 0, 2));
  auto rb = torch::min(a.unsqueeze(1).narrow(2, 2, 2), b.unsqueeze(0).narrow(2, 2, 2));
  auto wh = (rb - lt).clamp_min(0);
  auto inter = wh.select(2, 0) * wh.select(2, 1);
  auto area = [](const torch::Tensor& x) {
    return (x.select(1, 2) - x.select(1, 0)) * (x.select(1, 3) - x.select(1, 1));
  };
  return inter / (area(a).unsqueeze(1) + area(b).unsqueeze(0) - inter);
}

struct Targets {
  torch::Tensor cls;  // [A] int64: 0 background, >0 class, -1 ignore
  torch::Tensor box;  // [A, 4] encoded offsets (valid where cls > 0)
};

// SSD matching of one image's boxes (model-input pixels) to the anchors.
Targets match(const torch::Tensor& anchors, const torch::Tensor& boxes, const torch::Tensor& labels,
              const torch::Tensor& difficult) {
  const int64_t A = anchors.size(0);
  Targets t{torch::zeros({A}, torch::kInt64), torch::zeros({A, 4})};
  if (boxes.size(0) == 0) return t;
  auto iou = iou_matrix(corners(anchors), boxes);  // [A, G]
  auto [best, which] = iou.max(1);
  // Each box's best anchor is always matched to it.
  auto best_anchor = std::get<1>(iou.max(0));
  for (int64_t g = 0; g < boxes.size(0); ++g) {
    const int64_t a = best_anchor[g].item<int64_t>();
    which[a] = g;
    best[a] = 2.0;
  }
  auto lab = labels.index_select(0, which);
  auto diff = difficult.index_select(0, which);
  t.cls = torch::where(best >= 0.5, lab, torch::zeros_like(lab));
  t.cls = torch::where((best >= 0.4) & (best < 0.5), torch::full_like(lab, -1), t.cls);
  t.cls = torch::where((best >= 0.4) & diff.to(torch::kBool), torch::full_like(lab, -1), t.cls);
  auto g = boxes.index_select(0, which);
  auto gw = g.select(1, 2) - g.select(1, 0), gh = g.select(1, 3) - g.select(1, 1);
  auto gx = g.select(1, 0) + 0.5 * gw, gy = g.select(1, 1) + 0.5 * gh;
  auto ax = anchors.select(1, 0), ay = anchors.select(1, 1), aw = anchors.select(1, 2),
       ah = anchors.select(1, 3);
  t.box = torch::stack(
      {(gx - ax) / aw / 0.1, (gy - ay) / ah / 0.1, torch::log(gw.clamp_min(1e-3) / aw) / 0.2,
       torch::log(gh.clamp_min(1e-3) / ah) / 0.2},
      1);
  return t;
}

struct Sample {
  torch::Tensor image;  // [3, S, S]
  torch::Tensor boxes;  // [G, 4] model pixels, 0-based index coordinates
  torch::Tensor labels, difficult;
};

}  // namespace

namespace {

/// Every training image, resized once exactly as the model's forward resizes, with its anchor
/// targets unflipped and flipped (targets[flip][i]).
std::vector<Sample> load_training_set(const data::Dataset& train, int64_t n, int64_t S,
                                      const torch::Tensor& anchors, int threads,
                                      std::vector<Targets> (&targets)[2]) {
  std::vector<Sample> samples;
  Progress bar("load voc trainval", n);
  data::BatchStream stream(train, data::index_range(0, n), 64, {std::max(1, threads), 2, false});
  data::Batch b;
  torch::NoGradGuard ng;
  while (stream.next(&b)) {
    for (size_t i = 0; i < b.image_list.size(); ++i) {
      const auto& img = b.image_list[i];
      auto t = train.detection_target(b.positions[i]);
      Sample s;
      s.image = torch::upsample_bilinear2d(img.unsqueeze(0), {S, S}, false).squeeze(0);
      const double sx = static_cast<double>(S) / static_cast<double>(t.width);
      const double sy = static_cast<double>(S) / static_cast<double>(t.height);
      const auto g = static_cast<int64_t>(t.labels.size());
      s.boxes = torch::tensor(t.boxes).view({g, 4}) - 1.0;  // 0-based pixel indices
      s.boxes = s.boxes * torch::tensor({sx, sy, sx, sy}).to(torch::kFloat32);
      s.labels = torch::tensor(t.labels, torch::kInt64) + 1;
      s.difficult = torch::tensor(std::vector<int64_t>(t.difficult.begin(), t.difficult.end()));
      for (int flip = 0; flip < 2; ++flip) {
        auto bx = s.boxes.clone();
        if (flip) {  // x -> (S - 1) - x, corners swap
          bx = torch::stack({(S - 1.0) - s.boxes.select(1, 2), s.boxes.select(1, 1),
                             (S - 1.0) - s.boxes.select(1, 0), s.boxes.select(1, 3)},
                            1);
        }
        targets[flip].push_back(match(anchors, bx, s.labels, s.difficult));
      }
      samples.push_back(std::move(s));
    }
    bar.advance(b.size());
  }
  return samples;
}

/// The SSD loss of one batch: cross-entropy over positives and hard negatives (3 per positive,
/// at least 8 per image) plus smooth-L1 box regression, over the number of positives.
torch::Tensor detection_loss(torch::jit::Module& module, const torch::Tensor& x,
                             const torch::Tensor& tc, const torch::Tensor& tb) {
  auto outs = module.run_method("train_forward", x).toTuple();
  auto cls = outs->elements()[0].toTensor(), rel = outs->elements()[1].toTensor();
  const int64_t B = cls.size(0), A = cls.size(1), C = cls.size(2);
  auto ce = torch::nn::functional::cross_entropy(
                cls.reshape({-1, C}), tc.clamp_min(0).reshape({-1}),
                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                .view({B, A});
  auto pos = tc > 0, neg = tc == 0;
  auto npos = pos.sum(1);
  // Hard negatives: the 3 * positives (at least 8) highest-loss background anchors.
  auto neg_loss = ce.detach().masked_fill(~neg, -1.0);
  auto rank = neg_loss.argsort(1, /*descending=*/true).argsort(1, /*descending=*/false);
  auto quota = torch::clamp_min(3 * npos, 8).unsqueeze(1);
  auto hard = neg & (rank < quota);
  auto cls_loss = (ce * (pos | hard).to(ce.dtype())).sum();
  auto loc_loss = torch::nn::functional::smooth_l1_loss(
      rel.index({pos}), tb.index({pos}),
      torch::nn::functional::SmoothL1LossFuncOptions().reduction(torch::kSum));
  auto loss = (cls_loss + loc_loss) / std::max<int64_t>(1, npos.sum().item<int64_t>());
  return loss;
}

/// Test mAP of the archive at `path` through the evaluator trials use.
eval::TaskEvaluator::Gathered test_map(const std::string& path, const TrainConfig& cfg, int threads,
                                       int64_t* test_images) {
  data::Preprocess none = data::preprocess_preset("none");
  auto test = data::open_voc(cfg.data_root, "2007", "test", none, false);
  std::shared_ptr<const data::Dataset> test_view = std::move(test);
  if (cfg.test_limit > 0 && cfg.test_limit < test_view->size())
    test_view = data::subset(test_view, data::index_range(0, cfg.test_limit), "first images");
  model::LoadOptions lo;
  lo.input_shape = test_view->image_shape_of(0);
  auto net = model::Network::load(path, lo);
  eval::DetectionEvaluator ev({});
  eval::EvalRun run;
  run.batch_size = 32;
  run.loader = {std::max(1, threads), 2, false};
  run.label = "eval ssdlite test";
  auto shard = ev.evaluate(net, *test_view, run);
  *test_images = test_view->size();
  return ev.gathered_metrics(shard, shard, *test_view);
}

}  // namespace

TrainResult train_detector(const TrainConfig& cfg, const std::string& output) {
  if (cfg.epochs < 1) throw ConfigError("epochs must be >= 1");
  fs::path out(output);
  if (out.has_parent_path() && !fs::is_directory(out.parent_path()))
    throw ConfigError(output + ": output directory " + out.parent_path().string() +
                      " does not exist");
  const int threads = apply_threads(cfg.threads);
  const int64_t S = cfg.arch.input_shape.at(1);
  data::Preprocess none = data::preprocess_preset("none");
  auto train = data::open_voc(cfg.data_root, "2007", "trainval", none, false);

  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  auto module = model::build_model(cfg.arch);
  const torch::Tensor anchors = module.attr("anchors").toTensor();

  // Every training image, resized once exactly as the model's forward resizes.
  int64_t n = train->size();
  if (cfg.train_limit > 0) n = std::min(n, cfg.train_limit);
  std::vector<Targets> targets[2];  // [flipped]
  const std::vector<Sample> samples = load_training_set(*train, n, S, anchors, threads, targets);

  std::vector<torch::Tensor> params;
  for (const auto& p : module.parameters()) {
    p.requires_grad_(true);
    params.push_back(p);
  }
  torch::optim::AdamW opt(params,
                          torch::optim::AdamWOptions(cfg.lr).weight_decay(cfg.weight_decay));
  std::mt19937_64 rng(cfg.seed);
  std::vector<int64_t> order(samples.size());
  std::iota(order.begin(), order.end(), 0);
  const int64_t steps_per_epoch =
      (static_cast<int64_t>(samples.size()) + cfg.batch_size - 1) / cfg.batch_size;
  const int64_t total = steps_per_epoch * cfg.epochs;
  int64_t step = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::uniform_int_distribution<int> coin(0, 1);
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    module.train(true);
    std::shuffle(order.begin(), order.end(), rng);
    Progress bar(
        "train ssdlite epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs),
        static_cast<int64_t>(order.size()));
    double loss_sum = 0;
    int64_t seen = 0;
    for (size_t b0 = 0; b0 < order.size(); b0 += static_cast<size_t>(cfg.batch_size)) {
      const size_t b1 = std::min(order.size(), b0 + static_cast<size_t>(cfg.batch_size));
      std::vector<torch::Tensor> xs, cls_t, box_t;
      for (size_t k = b0; k < b1; ++k) {
        const auto i = static_cast<size_t>(order[k]);
        const int flip = coin(rng);
        xs.push_back(flip ? samples[i].image.flip({2}) : samples[i].image);
        cls_t.push_back(targets[flip][i].cls);
        box_t.push_back(targets[flip][i].box);
      }
      auto x = torch::stack(xs), tc = torch::stack(cls_t), tb = torch::stack(box_t);
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options())
            .lr(warmup_cosine_lr(step, total, cfg.lr));
      opt.zero_grad();
      auto loss = detection_loss(module, x, tc, tb);
      loss.backward();
      opt.step();
      ++step;
      loss_sum += loss.item<double>() * static_cast<double>(b1 - b0);
      seen += static_cast<int64_t>(b1 - b0);
      char buf[48];
      std::snprintf(buf, sizeof buf, "loss %.4f", loss_sum / static_cast<double>(seen));
      bar.advance(static_cast<int64_t>(b1 - b0), buf);
    }
    bar.finish();
  }
  const double seconds = seconds_since(t0);
  for (auto& p : params) p.requires_grad_(false);
  module.eval();

  json meta = json::parse(module.attr("mpq_meta").toStringRef());
  meta["training"] = cfg.identity();
  meta["train_seconds"] = seconds;
  meta["threads"] = threads;
  meta["task"] = "detection";
  meta["classes"] =
      std::vector<std::string>(data::voc_classes().begin(), data::voc_classes().end());
  AtomicFile archive(output);
  const std::string& tmp = archive.tmp();
  auto save = [&](const json& m) {
    module.setattr("mpq_meta", m.dump());
    try {
      module.save(tmp);
    } catch (const c10::Error& e) {
      throw InputError(output + ": cannot write model: " + e.what_without_backtrace());
    }
  };
  save(meta);

  // Test mAP through the evaluator trials use, on the saved archive.
  int64_t test_images = 0;
  auto g = test_map(tmp, cfg, threads, &test_images);
  const double map07 = g.metrics["map_voc07"].get<double>();
  meta["test_map_voc07"] = map07;
  meta["test_map_voc12"] = g.metrics["map_voc12"].get<double>();
  meta["test_images"] = test_images;
  save(meta);
  archive.commit();

  TrainResult r;
  r.path = output;
  r.test_top1 = map07;
  r.seconds = seconds;
  r.train_images = static_cast<int64_t>(samples.size());
  r.sidecar = meta;
  char buf[160];
  std::snprintf(
      buf, sizeof buf,
      "trained ssdlite: test mAP@0.5 VOC07 %.2f%% (VOC12 %.2f%%) in %.1f s (%d threads) -> ",
      100 * map07, 100 * meta["test_map_voc12"].get<double>(), seconds, threads);
  info(buf + output);
  return r;
}

}  // namespace mpq::train
