#include "mpq/train/train.h"

#include <fcntl.h>
#include <sys/file.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "mpq/data/fashion_mnist.h"
#include "mpq/data/loader.h"
#include "mpq/data/make_voc.h"
#include "mpq/train/detector.h"
#include "mpq/train/pretrained.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"
#include "mpq/util/stopwatch.h"
#include "mpq/util/threads.h"

namespace mpq::train {
namespace fs = std::filesystem;
using nlohmann::json;

json TrainConfig::identity() const {
  if (model::is_detector_arch(arch.arch))
    return {{"arch", arch.arch},
            {"width", arch.width},
            {"input_size", arch.input_shape.at(1)},
            {"epochs", epochs},
            {"batch_size", batch_size},
            {"lr", lr},
            {"weight_decay", weight_decay},
            {"seed", seed},
            {"train_limit", train_limit},
            {"test_limit", test_limit},
            {"dataset", "voc"},
            {"data", voc_identity},
            {"recipe", "ssd-adamw-onecycle-flip-v1"}};
  return {{"arch", arch.arch},
          {"width", arch.width},
          {"stem_stride", arch.stem_stride},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"lr", lr},
          {"momentum", momentum},
          {"weight_decay", weight_decay},
          {"seed", seed},
          {"train_limit", train_limit},
          {"test_limit", test_limit},
          {"augment", augment},
          {"dataset", "fashion-mnist"},
          {"recipe", "sgd-nesterov-onecycle-v1"}};
}

namespace {

// Random 28x28 crops of the 2-pixel zero-padded images (pad value = normalized black) and random
// horizontal flips, drawn from `rng`.
torch::Tensor augment_batch(const torch::Tensor& x, std::mt19937_64& rng) {
  const double black = (0.0 - data::kFashionMnistMean) / data::kFashionMnistStd;
  int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  auto padded = torch::constant_pad_nd(x, {2, 2, 2, 2}, black);
  auto out = torch::empty_like(x);
  std::uniform_int_distribution<int> off(0, 4), flip(0, 1);
  for (int64_t i = 0; i < n; ++i) {
    int dy = off(rng), dx = off(rng);
    auto crop = padded[i].narrow(1, dy, h).narrow(2, dx, w);
    if (flip(rng)) crop = crop.flip({2});
    out[i].copy_(crop);
  }
  return out;
}

double test_accuracy(torch::jit::Module& m, const data::Dataset& test) {
  torch::NoGradGuard ng;
  m.eval();
  int64_t correct = 0, n = test.size();
  data::BatchStream stream(test, data::index_range(0, n), 1000, {});
  data::Batch b;
  while (stream.next(&b)) {
    auto logits = m.forward({b.images}).toTensor();
    correct += logits.argmax(1).eq(b.labels).sum().item<int64_t>();
  }
  return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

}  // namespace

TrainResult train_model(const TrainConfig& cfg, const std::string& output) {
  if (model::is_detector_arch(cfg.arch.arch)) return train_detector(cfg, output);
  if (cfg.epochs < 1) throw ConfigError("epochs must be >= 1");
  fs::path out(output);
  if (out.has_parent_path() && !fs::is_directory(out.parent_path()))
    throw ConfigError(output + ": output directory " + out.parent_path().string() +
                      " does not exist");
  int threads = apply_threads(cfg.threads);
  auto train = data::load_fashion_mnist(cfg.data_root, data::Split::kTrain, cfg.train_limit);
  auto test = data::load_fashion_mnist(cfg.data_root, data::Split::kTest, cfg.test_limit);

  torch::manual_seed(cfg.seed);
  auto module = model::build_model(cfg.arch);
  std::vector<torch::Tensor> params;
  for (const auto& p : module.parameters()) {
    p.requires_grad_(true);
    params.push_back(p);
  }
  torch::optim::SGD opt(params, torch::optim::SGDOptions(cfg.lr)
                                    .momentum(cfg.momentum)
                                    .nesterov(true)
                                    .weight_decay(cfg.weight_decay));
  std::mt19937_64 rng(cfg.seed);
  int64_t n = train->size();
  int64_t steps_per_epoch = (n + cfg.batch_size - 1) / cfg.batch_size;
  int64_t total = steps_per_epoch * cfg.epochs, step = 0;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);

  auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    module.train(true);
    std::shuffle(order.begin(), order.end(), rng);
    Progress bar("train " + cfg.arch.arch + " epoch " + std::to_string(epoch + 1) + "/" +
                     std::to_string(cfg.epochs),
                 n);
    double loss_sum = 0;
    int64_t loss_n = 0;
    data::BatchStream stream(*train, order, cfg.batch_size, {});
    data::Batch batch;
    for (int64_t b = 0; b < n && stream.next(&batch); b += cfg.batch_size) {
      int64_t e = std::min(n, b + cfg.batch_size);
      torch::Tensor x = batch.images, y = batch.labels;
      if (cfg.augment) x = augment_batch(x, rng);
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::SGDOptions&>(group.options())
            .lr(warmup_cosine_lr(step, total, cfg.lr));
      opt.zero_grad();
      auto logits = module.forward({x}).toTensor();
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      opt.step();
      ++step;
      loss_sum += loss.item<double>() * static_cast<double>(e - b);
      loss_n += e - b;
      char buf[48];
      std::snprintf(buf, sizeof buf, "loss %.4f", loss_sum / static_cast<double>(loss_n));
      bar.advance(e - b, buf);
    }
    bar.finish();
  }
  double seconds = seconds_since(t0);
  for (auto& p : params) p.requires_grad_(false);
  double acc = test_accuracy(module, *test);

  json meta = json::parse(module.attr("mpq_meta").toStringRef());
  meta["training"] = cfg.identity();
  meta["test_top1"] = acc;
  meta["train_seconds"] = seconds;
  meta["threads"] = threads;
  module.setattr("mpq_meta", meta.dump());
  module.eval();
  {
    AtomicFile out(output);
    try {
      module.save(out.tmp());
    } catch (const c10::Error& e) {
      throw InputError(output + ": cannot write model: " + e.what_without_backtrace());
    }
    out.commit();
  }

  TrainResult r;
  r.path = output;
  r.test_top1 = acc;
  r.seconds = seconds;
  r.train_images = n;
  r.sidecar = meta;
  char buf[128];
  std::snprintf(buf, sizeof buf, "trained %s: test top-1 %.2f%% in %.1f s (%d threads) -> ",
                cfg.arch.arch.c_str(), 100 * acc, seconds, threads);
  info(buf + output);
  return r;
}

int default_epochs(const std::string& arch) {
  switch (model::parse_arch(arch)) {
    case model::Arch::kSsdlite:
      return kSsdliteEpochs;
    case model::Arch::kMobilenetV2:
      return 4;
    case model::Arch::kResnet20:
      break;
  }
  return 5;
}

const Schema& train_schema() {
  static const Schema s = [] {
    Schema k;
    k.choice("/arch", "resnet20", model::known_archs(), "architecture to train")
        .number("/width", 1.0, 0.01, 16.0, "channel multiplier")
        .integer("/stem_stride", 2, 1, 4, "stride of the ResNet-20 stem conv")
        .integer("/epochs", 0, 0, 1000,
                 "training epochs (0 = the arch's default: resnet20 5, mobilenetv2 4, ssdlite " +
                     std::to_string(kSsdliteEpochs) + ")")
        .integer("/batch_size", 0, 0, 65536, "minibatch size (0 = 128; ssdlite 32)")
        .number("/lr", 0.0, 0.0, 10.0,
                "peak learning rate of the one-cycle schedule (0 = 0.1 SGD; ssdlite 0.003 AdamW)")
        .integer("/input_size", 128, 32, 1024, "ssdlite: input side S (divisible by 32)")
        .number("/momentum", 0.9, 0.0, 0.999, "Nesterov momentum")
        .number("/weight_decay", 5e-4, 0.0, 1.0, "L2 weight decay")
        .integer("/seed", 0, 0, 1LL << 62, "seed of initialization, data order and augmentation")
        .integer("/train_limit", 0, 0, 60000, "train on the first N images (0 = all)")
        .integer("/test_limit", 0, 0, 10000, "report accuracy on the first N test images (0 = all)")
        .boolean("/augment", false, "random crops (pad 2) and horizontal flips")
        .string("/data_root", "",
                "Fashion-MNIST directory (\"\" = Debian's); ssdlite: a VOCdevkit directory "
                "(\"\" = the synthetic one of `mpq data make-voc`, generated if missing)")
        .string("/output", "", "archive to write (default: the model cache, results/models)")
        .integer("/threads", 0, 0, 4096, "threads (0 = all cores of this process's share)");
    return k;
  }();
  return s;
}

TrainConfig train_config_from_json(const json& j, std::string* output) {
  TrainConfig c;
  c.arch.arch = j["arch"].get<std::string>();
  c.arch.width = j["width"].get<double>();
  c.arch.stem_stride = j["stem_stride"].get<int64_t>();
  c.epochs = j["epochs"].get<int>();
  if (c.epochs == 0) c.epochs = default_epochs(c.arch.arch);
  const bool det = model::is_detector_arch(c.arch.arch);
  c.batch_size = j["batch_size"].get<int64_t>();
  if (c.batch_size == 0) c.batch_size = det ? 32 : 128;
  c.lr = j["lr"].get<double>();
  if (c.lr == 0) c.lr = det ? 0.003 : 0.1;
  if (det) {
    const int64_t s = j["input_size"].get<int64_t>();
    c.arch.in_channels = 3;
    c.arch.num_classes = 21;
    c.arch.input_shape = {3, s, s};
  }
  c.momentum = j["momentum"].get<double>();
  c.weight_decay = j["weight_decay"].get<double>();
  c.seed = j["seed"].get<uint64_t>();
  c.train_limit = j["train_limit"].get<int64_t>();
  c.test_limit = j["test_limit"].get<int64_t>();
  c.augment = j["augment"].get<bool>();
  c.data_root = j["data_root"].get<std::string>();
  if (c.data_root.empty())
    c.data_root = det ? data::default_synthetic_voc(data::kFashionMnistDefaultRoot)
                      : data::kFashionMnistDefaultRoot;
  if (det)
    c.voc_identity = j["data_root"].get<std::string>().empty() ? data::synthetic_voc_identity()
                                                               : json(c.data_root);
  c.threads = j["threads"].get<int>();
  if (output) *output = j["output"].get<std::string>();
  return c;
}

TrainConfig default_train_config(const std::string& arch, const std::string& data_root) {
  TrainConfig c;
  c.arch.arch = arch;
  c.data_root = data_root;
  c.epochs = default_epochs(arch);
  if (model::is_detector_arch(arch)) {
    c.data_root = data::default_synthetic_voc(data_root);
    c.voc_identity = data::synthetic_voc_identity();
    c.batch_size = 32;
    c.lr = 0.003;
    c.arch.in_channels = 3;
    c.arch.num_classes = 21;
    c.arch.input_shape = {3, 128, 128};
  }
  return c;
}

TrainResult ensure_cached(const TrainConfig& cfg, const std::string& cache_dir) {
  std::string key = sha256_hex(cfg.identity().dump()).substr(0, 16);
  fs::create_directories(cache_dir);
  std::string base = cache_dir + "/" + cfg.arch.arch + "-" + key;
  std::string pt = base + ".pt", side = base + ".json";
  // Several processes (MPI ranks, parallel tests) may ask for the same model: one trains, the
  // others wait on the lock and then find it cached.
  FileLock held(base + ".lock");
  if (fs::exists(pt) && fs::exists(side)) {
    TrainResult r;
    r.path = pt;
    r.from_cache = true;
    try {
      std::ifstream in(side);
      r.sidecar = json::parse(in);
      r.test_top1 = r.sidecar.value("test_top1", 0.0);
      r.seconds = r.sidecar.value("train_seconds", 0.0);
      return r;
    } catch (const std::exception&) {
      // A damaged sidecar means an interrupted write: retrain below.
    }
  }
  TrainResult r = train_model(cfg, pt);
  write_file_atomic(side, r.sidecar.dump(2) + "\n");
  return r;
}

std::string resolve_model_ref(const std::string& ref, const std::string& cache_dir,
                              const std::string& data_root) {
  if (is_pretrained_ref(ref)) return resolve_pretrained(ref, cache_dir);
  const std::string prefix = "default:";
  if (ref.rfind(prefix, 0) != 0) return ref;
  // default:<arch>[@seed=<n>]: an independently trained copy per training seed (seed 0 is the
  // plain default:<arch>, so both names give the same cached model).
  std::string arch = ref.substr(prefix.size());
  int64_t seed = -1;
  if (auto at = arch.find('@'); at != std::string::npos) {
    const std::string opt = arch.substr(at + 1);
    arch = arch.substr(0, at);
    char* end = nullptr;
    const char* digits = opt.c_str() + 5;
    if (opt.rfind("seed=", 0) == 0 && opt.size() > 5 &&
        std::isdigit(static_cast<unsigned char>(*digits)))
      seed = std::strtoll(digits, &end, 10);
    if (seed < 0 || end == nullptr || *end != '\0')
      throw ConfigError("model '" + ref + "': expected default:<arch> or default:<arch>@seed=<n>");
  }
  bool known = false;
  for (const auto& a : model::known_archs()) known = known || a == arch;
  if (!known)
    throw ConfigError("model '" + ref +
                      "': unknown default model (known: default:resnet20, default:mobilenetv2, "
                      "default:ssdlite; optionally @seed=<n>)");
  TrainConfig cfg = default_train_config(arch, data_root);
  if (seed >= 0) cfg.seed = static_cast<uint64_t>(seed);
  return ensure_cached(cfg, cache_dir).path;
}

double warmup_cosine_lr(int64_t step, int64_t total, double peak) {
  int64_t warm = std::max<int64_t>(1, static_cast<int64_t>(0.15 * static_cast<double>(total)));
  if (step < warm) return peak * static_cast<double>(step + 1) / static_cast<double>(warm);
  double t =
      static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, total - warm));
  return 0.5 * peak * (1.0 + std::cos(M_PI * t));
}

}  // namespace mpq::train
