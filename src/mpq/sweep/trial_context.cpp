// What trials share (TrialContext: networks, splits, evaluation sets, image caches, FP
// references) and the steps every trial entry point uses: the evaluation shard, batch sizes, the
// FP reference's key, loading the trial's network, the data identity (trial.h).
#include <cmath>
#include <filesystem>

#include "mpq/data/calibration.h"
#include "mpq/data/factory.h"
#include "mpq/data/fashion_mnist.h"
#include "mpq/eval/detection.h"
#include "mpq/eval/metrics.h"
#include "mpq/store/image_cache.h"
#include "mpq/sweep/trial.h"
#include "mpq/train/train.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"
#include "mpq/util/threads.h"

namespace mpq::sweep {
namespace fs = std::filesystem;
using nlohmann::json;
// --- context ----------------------------------------------------------------------------------

model::Network& TrialContext::network(const std::string& path, const model::LoadOptions& o) {
  std::string key = path + "|" + (o.fold_bn ? "fold" : "nofold") + "|" + o.equalize.key() + "|";
  for (auto s : o.input_shape) key += std::to_string(s) + ",";
  auto it = networks_.find(key);
  if (it == networks_.end()) {
    auto net = std::make_unique<model::Network>(model::Network::load(path, o));
    it = networks_.emplace(key, std::move(net)).first;
  }
  it->second->restore_fp();
  // Once per trial (each trial asks for its network once).
  const std::string note = it->second->coverage_note();
  if (!note.empty()) warn(path + ": " + note);
  return *it->second;
}

std::shared_ptr<const data::Dataset> TrialContext::split(const data::DataSpec& spec,
                                                         const std::string& name) {
  const std::string key = spec.key() + "|" + name;
  auto it = splits_.find(key);
  if (it == splits_.end())
    it = splits_.emplace(key, std::shared_ptr<const data::Dataset>(data::open_dataset(spec, name)))
             .first;
  return it->second;
}

int64_t TrialContext::split_size(const data::DataSpec& spec, const std::string& name) {
  auto it = splits_.find(spec.key() + "|" + name);
  if (it != splits_.end()) return it->second->size();
  if (data::dataset_kind(spec.name) == data::DatasetKind::kFashionMnist &&
      (name == "train" || name == "test"))
    return data::fashion_mnist_size(spec.resolved_root(),
                                    name == "train" ? data::Split::kTrain : data::Split::kTest);
  return split(spec, name)->size();
}

namespace {

// The image cache applies to datasets read from files (Fashion-MNIST is held in memory).
bool cacheable(const DataConfig& d) {
  return d.cache && d.spec.name != "fashion-mnist";
}

store::ImageCacheOptions cache_options(const DataConfig& d, int threads) {
  return {d.loader(threads).workers, d.skip_bad_images};
}

}  // namespace

EvalSet TrialContext::eval_set(const DataConfig& d, bool cached, int threads) {
  const bool use_cache = cached && cacheable(d);
  const std::string key = d.spec.key() + "|" + d.eval_split + "|" + std::to_string(d.eval_subset) +
                          ":" + std::to_string(d.eval_subset_seed) + ":" +
                          std::to_string(d.eval_limit) + (use_cache ? "|cache:" + d.cache_dir : "");
  auto it = eval_sets_.find(key);
  if (it != eval_sets_.end()) return it->second;
  auto base = split(d.spec, d.eval_split);
  if (d.eval_subset > base->size())
    throw ConfigError("/data/eval_subset: a subset of " + std::to_string(d.eval_subset) +
                      " images was asked for, but the " + d.eval_split + " split (" +
                      base->describe() + ") holds " + std::to_string(base->size()));
  EvalSet set;
  std::vector<int64_t> idx;
  if (d.eval_subset > 0 && d.eval_subset < base->size())
    idx = data::stratified_subset(*base, d.eval_subset, d.eval_subset_seed);
  if (d.eval_limit > 0 && d.eval_limit < (idx.empty() ? base->size() : int64_t(idx.size()))) {
    if (idx.empty()) idx = data::index_range(0, d.eval_limit);
    idx.resize(static_cast<size_t>(d.eval_limit));
  }
  set.indices = idx;
  set.data = idx.empty() ? base
                         : std::shared_ptr<const data::Dataset>(data::subset(
                               base, idx, d.eval_subset > 0 ? "eval subset" : "first images"));
  if (use_cache)
    set.data = std::shared_ptr<const data::Dataset>(
        store::cached_images(set.data, d.cache_dir, cache_options(d, threads)));
  return eval_sets_.emplace(key, set).first->second;
}

std::shared_ptr<const data::Dataset> TrialContext::calibration_set(
    const DataConfig& d, const std::vector<int64_t>& indices, int threads) {
  auto base = split(d.spec, d.calibration_split);
  std::shared_ptr<const data::Dataset> view = data::subset(base, indices, "calibration sample");
  const std::string key = view->fingerprint() + (cacheable(d) ? "|cache:" + d.cache_dir : "");
  auto it = calibration_sets_.find(key);
  if (it != calibration_sets_.end()) return it->second;
  if (cacheable(d))
    view = std::shared_ptr<const data::Dataset>(
        store::cached_images(view, d.cache_dir, cache_options(d, threads)));
  return calibration_sets_.emplace(key, view).first->second;
}

const eval::EvalShard* TrialContext::fp_reference(const std::string& key, int64_t begin,
                                                  int64_t end) {
  auto it = fp_.find(key);
  if (it == fp_.end() || begin < it->second.begin || end > it->second.end) return nullptr;
  FpEntry& e = it->second;
  if (begin == e.begin && end == e.end) return &e.shard;
  e.slice = eval::slice_shard(e.shard, begin, end);
  return &e.slice;
}

void TrialContext::put_fp_reference(const std::string& key, int64_t begin, int64_t end,
                                    eval::EvalShard s) {
  FpEntry e;
  e.begin = begin;
  e.end = end;
  e.shard = std::move(s);
  fp_[key] = std::move(e);
}

eval::EvalShard evaluate_network(model::Network& net, model::EvalEngine engine,
                                 const std::vector<ptq::ActQuant>* act,
                                 const eval::TaskEvaluator& evaluator, const data::Dataset& data,
                                 const eval::EvalRun& run, std::string* engine_used) {
  std::vector<model::InputFakeQuant> fq;
  bool any = false;
  if (act)
    for (const auto& a : *act) {
      fq.push_back({a.enabled, a.scale, a.qmin, a.qmax});
      any = any || a.enabled;
    }
  if (!any) fq.clear();
  // Detectors stay on the hooked graph: optimize_for_inference gave torchvision's SSDlite wrong
  // detections (its post-processing loops over images; all images wrong at batch 1, 3 of 24 in
  // one batch of 24) and mpq's default detector no speed-up (docs/benchmarks.md).
  std::string why;
  if (data.task() == data::Task::kDetection) {
    if (engine == model::EvalEngine::kOptimized)
      throw ConfigError(
          "/eval/engine: 'optimized' is for classifiers; detectors evaluate on the "
          "hooked graph (use auto or hooked)");
    if (engine == model::EvalEngine::kAuto) why = " (detection models are not optimized)";
    engine = model::EvalEngine::kHooked;
  }
  model::InferenceScope scope(net, engine, fq);
  if (engine_used) *engine_used = scope.description() + why;
  // The hooked graph applies the activation quantizers through the layer-input hook.
  ptq::ActivationQuantizer hook(act && any ? *act : std::vector<ptq::ActQuant>{});
  model::HookScope hooks(scope.hooked() && any ? &hook : nullptr);
  return evaluator.evaluate(net, data, run);
}

std::pair<int64_t, int64_t> eval_shard(int64_t n, int64_t batch_size, int rank, int size) {
  const int64_t batches = (n + batch_size - 1) / batch_size;
  return {std::min(n, batches * rank / size * batch_size),
          std::min(n, batches * (rank + 1) / size * batch_size)};
}

int64_t eval_batch(const TrialConfig& cfg, const model::Network& net) {
  return net.bounded_batch(cfg.data.batch_size, cfg.data.max_batch_mb << 20);
}

int64_t calibration_batch(const TrialConfig& cfg, const model::Network& net) {
  return net.bounded_batch(cfg.calibration.batch_size, cfg.data.max_batch_mb << 20);
}

std::string fp_reference_key(const model::Network& net, const data::Dataset& set,
                             int64_t batch_size, const eval::TaskEvaluator& evaluator,
                             model::EvalEngine engine) {
  return net.sha256() + (net.fold_bn() ? "|fold|" : "|nofold|") + net.equalize_options().key() +
         "|" + set.fingerprint() + "|" + std::to_string(batch_size) + "|" +
         evaluator.shard_options() + "|" + model::eval_engine_name(engine);
}

std::string resolve_model_path(const TrialConfig& cfg) {
  // Default models are trained on Fashion-MNIST whatever the trial evaluates on.
  const auto& spec = cfg.data.spec;
  const std::string fm_root =
      spec.name == "fashion-mnist" ? spec.resolved_root() : data::kFashionMnistDefaultRoot;
  return train::resolve_model_ref(cfg.model.path, cfg.model.cache_dir, fm_root);
}

model::Network& load_trial_network(const TrialConfig& cfg, const data::Dataset& eval_data,
                                   TrialContext& ctx) {
  model::LoadOptions lo;
  lo.fold_bn = cfg.model.fold_bn;
  lo.equalize = cfg.model.equalize;
  lo.detection_ops = cfg.model.detection_ops;
  lo.input_shape = cfg.model.input_shape;
  const bool from_data = lo.input_shape.empty();
  // Varying sizes (detection): probe with the first image's size.
  if (from_data)
    lo.input_shape = eval_data.fixed_size() ? eval_data.image_shape() : eval_data.image_shape_of(0);
  const std::string path = resolve_model_path(cfg);
  try {
    return ctx.network(path, lo);
  } catch (const ConfigError& e) {
    if (!from_data) throw;
    auto s = lo.input_shape;
    throw ConfigError(std::string(e.what()) + " -- the data gives " + std::to_string(s[0]) + "x" +
                      std::to_string(s[1]) + "x" + std::to_string(s[2]) + " images (" +
                      eval_data.describe() + "; preprocessing " + eval_data.preprocess().preset +
                      "): set data.preprocess (color, resize, crop) to what the model expects");
  }
}

std::string data_identity(const TrialConfig& cfg, TrialContext& ctx) {
  std::string fp = ctx.eval_set(cfg.data, false, 1).data->fingerprint();
  if (cfg.uses_calibration_data())
    fp =
        sha256_hex(fp + "\n" + ctx.split(cfg.data.spec, cfg.data.calibration_split)->fingerprint());
  return fp;
}

}  // namespace mpq::sweep
