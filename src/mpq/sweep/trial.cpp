#include "mpq/sweep/trial.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "mpq/data/calibration.h"
#include "mpq/data/fashion_mnist.h"
#include "mpq/eval/detection.h"
#include "mpq/eval/metrics.h"
#include "mpq/model/expand.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/bias_correction.h"
#include "mpq/quant/layer.h"
#include "mpq/store/data_export.h"
#include "mpq/store/image_cache.h"
#include "mpq/train/train.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/provenance.h"
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
  if (spec.name == "fashion-mnist" && (name == "train" || name == "test"))
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

// --- the stages -------------------------------------------------------------------------------

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// With several processes, a failure on one must become a failure on all before the next
// collective step, or the others would wait forever: run() executes local work and then agrees.
class Collective {
 public:
  explicit Collective(TrialDistribution* dist) : dist_(dist) {}
  template <typename F>
  auto run(const F& f) -> decltype(f()) {
    if (!dist_) return f();
    std::string error;
    bool config_error = false;
    try {
      auto r = f();
      dist_->agree("");
      return r;
    } catch (const ConfigError& e) {
      error = e.what();
      config_error = true;
    } catch (const std::exception& e) {
      error = e.what();
    }
    dist_->agree(error.empty() ? "unknown error" : error, config_error);
    MPQ_ASSERT(false, "agree() returned after a local error");
    return f();
  }
  TrialDistribution* dist() const { return dist_; }
  bool writer() const { return !dist_ || dist_->rank() == 0; }

 private:
  TrialDistribution* dist_;
};

// Everything the later stages need.
struct Prepared {
  TrialConfig cfg;
  int threads = 1;
  std::string model_path;
  model::Network* net = nullptr;
  EvalSet eval;
  std::shared_ptr<const data::Dataset> calibration;  // null without calibration data
  std::vector<int64_t> calibration_indices;          // indices in the calibration split
  std::string id;
  eval::EvalRun run;  // this process's shard
  std::unique_ptr<eval::TaskEvaluator> evaluator;
  const eval::EvalShard* fp = nullptr;
  std::string start_time;
  std::chrono::steady_clock::time_point t0;
  std::vector<NamedArray> arrays;  // result tables of the evaluation (per-class AP, ...)
  double data_seconds = 0;         // opening the data (listing, image cache build or open)
  double fp_eval_seconds = 0;      // the FP reference pass (0 when it came from the context)
  std::string eval_engine;         // what evaluated the quantized network (InferenceScope)
};

void check_output_dirs(const TrialConfig& cfg) {
  for (const auto& [key, path] : {std::pair<std::string, std::string>{"output", cfg.output},
                                  {"export", cfg.export_path},
                                  {"export_int8", cfg.export_int8_path},
                                  {"save_logits", cfg.save_logits_path}}) {
    if (path.empty()) continue;
    fs::path p(path);
    fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir))
      throw ConfigError("/" + key + ": directory " + dir.string() + " of " + path +
                        " does not exist");
  }
}

Prepared prepare(const json& resolved, TrialContext& ctx, Collective& col) {
  Prepared p;
  p.t0 = std::chrono::steady_clock::now();
  p.start_time = utc_now_iso();
  p.cfg = parse_trial_config(resolved);
  const TrialConfig& cfg = p.cfg;
  p.threads = apply_threads(cfg.threads);
  check_output_dirs(cfg);

  col.run([&] {
    // Data first: a default model reference may need Fashion-MNIST to train.
    auto td = std::chrono::steady_clock::now();
    p.eval = ctx.eval_set(cfg.data, true, p.threads);
    p.model_path = resolve_model_path(cfg);
    p.net = &load_trial_network(cfg, *p.eval.data, ctx);
    if (cfg.uses_calibration_data()) {
      const int64_t n = ctx.split_size(cfg.data.spec, cfg.data.calibration_split);
      p.calibration_indices =
          data::calibration_indices(n, cfg.calibration.size, cfg.calibration.seed);
      p.calibration = ctx.calibration_set(cfg.data, p.calibration_indices, p.threads);
    }
    p.data_seconds = seconds_since(td);
    return 0;
  });
  p.id = trial_id(resolved, p.net->sha256(), data_identity(cfg, ctx));
  p.evaluator = eval::make_evaluator(p.eval.data->task(), cfg.detection);

  p.run.batch_size = eval_batch(cfg, *p.net);
  p.run.loader = cfg.data.loader(p.threads);
  const int64_t n = p.eval.data->size();
  std::tie(p.run.begin, p.run.end) =
      col.dist() ? eval_shard(n, p.run.batch_size, col.dist()->rank(), col.dist()->size())
                 : std::pair<int64_t, int64_t>{0, n};
  const std::string key =
      fp_reference_key(*p.net, *p.eval.data, p.run.batch_size, *p.evaluator, cfg.eval_engine);
  p.fp = col.run([&] {
    const eval::EvalShard* s = ctx.fp_reference(key, p.run.begin, p.run.end);
    if (s == nullptr) {
      auto tf = std::chrono::steady_clock::now();
      p.net->restore_fp();
      eval::EvalRun r = p.run;
      r.label = "eval FP model";
      ctx.put_fp_reference(key, p.run.begin, p.run.end,
                           evaluate_network(*p.net, cfg.eval_engine, nullptr, *p.evaluator,
                                            *p.eval.data, r, nullptr));
      s = ctx.fp_reference(key, p.run.begin, p.run.end);
      p.fp_eval_seconds = seconds_since(tf);
    }
    return s;
  });
  return p;
}

ptq::CalibrationContext calibration_context(const Prepared& p) {
  const TrialConfig& cfg = p.cfg;
  ptq::CalibrationContext cc;
  cc.data = p.calibration.get();
  if (cc.data) cc.indices = data::index_range(0, cc.data->size());
  cc.options.batch_size = calibration_batch(cfg, *p.net);
  cc.options.max_bytes_per_layer = cfg.calibration.max_stats_mb << 20;
  cc.options.seed = cfg.calibration.seed;
  cc.options.loader = cfg.data.loader(p.threads);
  cc.cache_dir = cfg.calibration.cache_dir;
  cc.cache_description = {{"model_sha256", p.net->sha256()},
                          {"fold_bn", cfg.model.fold_bn},
                          {"input_shape", p.net->input_shape()},
                          {"data", cc.data ? cc.data->fingerprint() : ""}};
  if (cfg.model.equalize.enabled) cc.cache_description["equalize"] = cfg.model.equalize.key();
  return cc;
}

ptq::NetworkQuantization quantize(Prepared& p, const ptq::CalibrationContext& cc, Collective& col) {
  p.net->restore_fp();
  return ptq::quantize_network(*p.net, p.cfg.weights, cc, col.dist());
}

// Activation quantizers, calibrated on the FP network's inputs, then bias correction measured
// with them in place. Both run identically on every process of a layer-parallel trial.
struct Corrections {
  std::vector<ptq::ActQuant> act;
  std::vector<json> bias;  // per layer
};

Corrections correct(Prepared& p, const ptq::NetworkQuantization& nq,
                    const ptq::CalibrationContext& cc, Collective& col) {
  model::Network& net = *p.net;
  const size_t count = net.layers().size();
  Corrections c{std::vector<ptq::ActQuant>(count), std::vector<json>(count, json::object())};
  std::vector<bool> weight_quantized;
  for (const auto& o : nq.layers) weight_quantized.push_back(o.quantized);
  const auto& acfg = p.cfg.activations;
  col.run([&] {
    if (acfg.enabled()) {
      std::vector<torch::Tensor> qw;
      for (const auto& L : net.layers()) qw.push_back(net.weight(L.index));
      for (const auto& L : net.layers()) net.set_weight(L.index, net.fp_weight(L.index));
      c.act = ptq::calibrate_activations(net, acfg, cc, weight_quantized);
      for (const auto& L : net.layers()) net.set_weight(L.index, qw[static_cast<size_t>(L.index)]);
    }
    ptq::ActivationQuantizer aq(c.act);
    if (p.cfg.bias_correction)
      c.bias = ptq::correct_biases(net, cc, weight_quantized, acfg.enabled() ? &aq : nullptr);
    return 0;
  });
  return c;
}

// The quantized network on this process's shard, reduced to the metric map over processes.
json evaluate(Prepared& p, const Corrections& c, Collective& col) {  // fills p.arrays
  eval::EvalRun r = p.run;
  r.label = "eval quantized";
  auto q = col.run([&] {
    return evaluate_network(*p.net, p.cfg.eval_engine, &c.act, *p.evaluator, *p.eval.data, r,
                            &p.eval_engine);
  });
  // Every process gathers every example's statistics and sums them in position order: the
  // metrics do not depend on how the evaluation was split (task.h).
  std::vector<eval::ExampleStats> parts;
  if (col.dist()) {
    for (const auto& b :
         col.dist()->allgather(eval::pack_example_stats(p.evaluator->example_stats(q, *p.fp))))
      parts.push_back(eval::unpack_example_stats(b));
  } else {
    parts.push_back(p.evaluator->example_stats(q, *p.fp));
  }
  json m = p.evaluator->metrics(eval::sum_in_position_order(parts));
  if (p.evaluator->needs_gather()) {
    // Every process computes the metrics from all shards (the same bytes, the same result).
    eval::EvalShard all_q = q, all_fp = *p.fp;
    if (col.dist()) {
      std::vector<eval::EvalShard> qs, fs;
      for (const auto& b : col.dist()->allgather(eval::pack_shard(q)))
        qs.push_back(eval::unpack_shard(b));
      for (const auto& b : col.dist()->allgather(eval::pack_shard(*p.fp)))
        fs.push_back(eval::unpack_shard(b));
      all_q = eval::concat_shards(qs);
      all_fp = eval::concat_shards(fs);
    }
    auto g = p.evaluator->gathered_metrics(all_q, all_fp, *p.eval.data);
    for (const auto& [k, v] : g.metrics.items()) m[k] = v;
    p.arrays = std::move(g.arrays);
  }
  if (!p.cfg.save_logits_path.empty()) {
    // Every example's outputs, in position order, written by the writing process.
    eval::EvalShard all = q;
    if (col.dist()) {
      std::vector<eval::EvalShard> parts;
      for (const auto& b : col.dist()->allgather(eval::pack_shard(q)))
        parts.push_back(eval::unpack_shard(b));
      all = eval::concat_shards(parts);
    }
    if (col.writer())
      store::write_eval_outputs(p.cfg.save_logits_path, all, *p.eval.data,
                                {{"model", p.net->path()},
                                 {"model_sha256", p.net->sha256()},
                                 {"trial_id", p.id},
                                 {"eval_engine", p.eval_engine}});
  }
  m["eval_seconds"] = q.seconds;  // this process's shard
  m["images_per_second"] = q.seconds > 0 ? static_cast<double>(q.n) / q.seconds : 0.0;
  return m;
}

// `err` = ||w - w~||^2 and `w_sq` = ||w||^2 of the layer (computed once by the caller).
store::LayerRecord layer_record(const model::LayerInfo& info, const ptq::LayerOutcome& o,
                                double err, double w_sq, const torch::Tensor& w) {
  store::LayerRecord L;
  L.index = info.index;
  L.d = info.d();
  json shape_json = w.sizes().vec();
  L.attrs = {{"name", info.name},       {"kind", model::layer_kind_name(info.kind)},
             {"c_out", info.c_out},     {"c_in", info.c_in},
             {"groups", info.groups},   {"weight_shape", shape_json.dump()},
             {"macs", info.macs},       {"params", info.params()},
             {"quantized", o.quantized}};
  if (!o.quantized) {
    L.attrs["bits"] = 32;
    L.points_per_channel.assign(static_cast<size_t>(info.c_out), 0);
    return L;
  }
  const auto& q = o.q;
  L.d = q.d;  // the stored codes' width: wider than the layer's for OCS (split columns)
  L.attrs["original_d"] = info.d();
  for (const auto& [k, v] : o.attrs.items()) L.attrs[k] = v;
  L.max_points = q.max_points;
  L.points_per_channel = q.points;
  L.codes = q.codes;
  L.scales = q.scales;
  L.point_channel = q.point_channel;
  L.weight_error = q.weight_error;
  L.output_error = q.output_error;
  L.grant_order = q.grant_order;
  L.channel_bits = q.channel_bits;
  L.ocs_source = q.ocs_source;
  if (!q.ocs_source.empty()) L.attrs["ocs_k"] = q.ocs_k;
  L.attrs["total_points"] = q.total_points();
  L.attrs["extra_points"] = q.total_points() - q.c_out;
  const double base_bits = static_cast<double>(info.params()) * q.bits;
  L.attrs["extra_channels_pct"] =
      100.0 * static_cast<double>(q.total_points() - q.c_out) / static_cast<double>(q.c_out);
  L.attrs["extra_macs_pct"] = info.macs > 0
                                  ? 100.0 * quant::extra_macs(q, static_cast<double>(info.macs)) /
                                        static_cast<double>(info.macs)
                                  : 0.0;
  L.attrs["extra_weight_bits_pct"] =
      base_bits > 0 ? 100.0 * (q.code_bits() - base_bits) / base_bits : 0.0;
  L.attrs["weight_mse"] = err / static_cast<double>(info.params());
  L.attrs["weight_rel_error"] = w_sq > 0 ? std::sqrt(err / w_sq) : 0.0;
  return L;
}

// Per-layer records and the network-wide cost and error metrics.
void record_layers(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
                   store::TrialRecord& rec) {
  const model::Network& net = *p.net;
  int64_t channels = 0, points = 0, macs = 0, extra_macs = 0;
  double weight_bits = 0, extra_weight_bits = 0, err_total = 0, w_total = 0;
  double extra_in_channels = 0, in_channels = 0;
  int quantized = 0;
  for (const auto& info : net.layers()) {
    const auto i = static_cast<size_t>(info.index);
    const auto& o = nq.layers[i];
    const torch::Tensor& w = net.fp_weight(info.index);
    const double err = o.quantized ? quant::layer_weight_sq_error(w.data_ptr<float>(), o.q) : 0.0;
    // In element order: LibTorch's sum() splits large tensors by the thread count.
    double w_sq = 0;
    const float* pw = w.data_ptr<float>();
    for (int64_t k = 0; k < w.numel(); ++k) w_sq += static_cast<double>(pw[k]) * pw[k];
    rec.layers.push_back(layer_record(info, o, err, w_sq, w));
    auto& attrs = rec.layers.back().attrs;
    const auto& a = c.act[i];
    attrs["act_bits"] = a.enabled ? a.bits : 32;
    if (a.enabled) {
      attrs["act_unsigned"] = a.is_unsigned;
      attrs["act_scale"] = a.scale;
      attrs["act_observed_min"] = a.observed_min;
      attrs["act_observed_max"] = a.observed_max;
    }
    for (const auto& [k, v] : c.bias[i].items()) attrs[k] = v;
    if (!o.quantized) continue;
    ++quantized;
    channels += o.q.c_out;
    points += o.q.total_points();
    macs += info.macs;
    extra_macs +=
        static_cast<int64_t>(std::llround(quant::extra_macs(o.q, static_cast<double>(info.macs))));
    weight_bits += static_cast<double>(info.params()) * o.q.bits;
    extra_weight_bits += o.q.code_bits() - static_cast<double>(info.params()) * o.q.bits;
    extra_in_channels += static_cast<double>(o.q.ocs_source.size());
    in_channels += static_cast<double>(info.c_in);
    err_total += err;
    w_total += w_sq;
  }
  auto pct = [](double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; };
  json& m = rec.metrics;
  m["quantized_layers"] = quantized;
  m["total_points"] = points;
  m["extra_points"] = points - channels;
  m["extra_channels_pct"] =
      pct(static_cast<double>(points - channels), static_cast<double>(channels));
  m["extra_macs_pct"] = pct(static_cast<double>(extra_macs), static_cast<double>(macs));
  m["extra_weight_bits_pct"] = pct(extra_weight_bits, weight_bits);
  m["extra_input_channels_pct"] = pct(extra_in_channels, in_channels);
  m["weight_rel_error"] = w_total > 0 ? std::sqrt(err_total / w_total) : 0.0;
  for (const auto& [k, v] : nq.summary.items()) m[k] = v;
}

// Provenance and every convention that changes results (method.md §7).
json manifest(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
              const json& metrics, Collective& col) {
  const TrialConfig& cfg = p.cfg;
  const model::Network& net = *p.net;
  const data::Dataset& eval_data = *p.eval.data;
  json m = provenance_json();
  m["trial_id"] = p.id;
  m["threads"] = p.threads;
  m["start_time"] = p.start_time;
  m["model_path"] = p.model_path;
  m["model_sha256"] = net.sha256();
  m["model_meta"] = net.meta();
  m["model_input_shape"] = json(net.input_shape()).dump();
  m["bn_folded"] = cfg.model.fold_bn;
  m["bn_layers_before_fold"] = net.bn_before_fold();
  m["bn_layers_after_fold"] = net.bn_after_fold();
  if (cfg.model.equalize.enabled) {
    const auto& r = net.equalize_report();
    std::vector<std::string> names;
    for (const auto& L : net.layers()) names.push_back(L.name);
    m["equalize"] = cfg.model.equalize.key();
    m["equalized_pairs"] = r.describe(names);
    m["equalize_pair_count"] = static_cast<int64_t>(r.pairs.size());
    m["equalize_passes"] = r.passes;
    m["equalize_relu6"] = std::string(model::relu6_mode_name(cfg.model.equalize.relu6)) + " (" +
                          std::to_string(r.relu6_replaced) + " replaced by ReLU, " +
                          std::to_string(r.relu6_skipped) + " pairs skipped)";
  }
  m["task"] = data::task_name(eval_data.task());
  m["detection_ops"] = net.detection_ops();
  if (eval_data.task() == data::Task::kDetection) {
    m["detection_input"] = net.input_kind() == model::InputKind::kTensorList
                               ? "List[Tensor] of images (torchvision convention)"
                               : "Tensor [N, C, H, W]";
    m["detection_iou"] = cfg.detection.iou_threshold;
    m["detection_iou_rule"] =
        cfg.detection.strict_iou ? "IoU > threshold" : "IoU >= threshold (VOC devkit)";
    m["detection_label_offset"] = cfg.detection.label_offset;
    m["detection_headline"] = cfg.detection.headline;
    m["detection_fidelity_score"] = cfg.detection.fidelity_score;
  }
  m["dataset"] = cfg.data.spec.name;
  m["dataset_root"] = cfg.data.spec.resolved_root();
  m["dataset_fingerprint"] = eval_data.fingerprint();
  m["dataset_description"] = eval_data.describe();
  const json dm = eval_data.manifest();
  for (const char* k :
       {"layout", "label_mapping", "classes", "classes_sha256", "fingerprint_mode", "image_cache"})
    if (dm.contains(k)) m[std::string("dataset_") + k] = dm[k];
  m["preprocessing"] = eval_data.preprocess().describe();
  m["preprocessing_json"] = eval_data.preprocess().to_json().dump();
  m["eval_split"] = cfg.data.eval_split;
  m["eval_images"] = metrics.value("n_eval", int64_t{0});
  m["eval_subset"] = cfg.data.eval_subset;
  m["eval_subset_seed"] = cfg.data.eval_subset_seed;
  m["eval_limit"] = cfg.data.eval_limit;
  m["eval_batch_size"] = p.run.batch_size;
  m["calibration_batch_size"] = calibration_batch(cfg, net);
  m["bad_images_skipped"] = metrics.value("skipped_images", int64_t{0});
  m["on_bad_image"] = cfg.data.skip_bad_images ? "skip" : "error";
  m["calibration_split"] = cfg.data.calibration_split;
  m["calibration_size"] = static_cast<int64_t>(p.calibration_indices.size());
  m["calibration_seed"] = cfg.calibration.seed;
  m["calibration_used"] = nq.used_calibration;
  m["calibration_statistics"] =
      nq.used_calibration
          ? (cfg.weights.statistics == ptq::Statistics::kFp ? "fp" : "quantized_prefix")
          : "none";
  m["ranks"] = col.dist() ? col.dist()->size() : 1;
  m["eval_engine"] = p.eval_engine;
  m["data_seconds"] = p.data_seconds;
  m["fp_eval_seconds"] = p.fp_eval_seconds;
  m["weight_method"] = ptq::weight_method_name(cfg.weights.method);
  m["weight_bits"] = cfg.weights.bits;
  m["weight_granularity"] = quant::granularity_name(cfg.weights.granularity);
  m["weight_search"] = cfg.weights.method == ptq::WeightMethod::kRtn
                           ? "max range"
                           : cfg.resolved["weights"]["search"].get<std::string>();
  if (cfg.weights.method == ptq::WeightMethod::kGptq) {
    m["weight_search"] = "gptq";
    m["gptq"] = cfg.resolved["weights"]["gptq"];
  }
  if (cfg.weights.method == ptq::WeightMethod::kAdaround) {
    m["weight_search"] = "adaround";
    m["adaround"] = cfg.resolved["weights"]["adaround"];
  }
  m["first_layer"] = ptq::layer_rule_name(cfg.weights.first_layer);
  m["last_layer"] = ptq::layer_rule_name(cfg.weights.last_layer);
  const auto& acfg = cfg.activations;
  m["activation_bits"] = acfg.bits;
  if (acfg.enabled()) {
    int n_unsigned = 0, n_quant = 0;
    for (const auto& a : c.act)
      if (a.enabled) {
        ++n_quant;
        n_unsigned += a.is_unsigned ? 1 : 0;
      }
    m["activation_quantizers"] =
        "per-tensor fake quant (torch fake_quantize_per_tensor_affine) at the inputs of " +
        std::to_string(n_quant) + " quantized layers; " + std::to_string(n_unsigned) +
        " unsigned (input never negative on calibration data), the rest signed symmetric";
    m["activation_range"] = ptq::act_range_name(acfg.range);
    m["activation_first_layer"] = ptq::layer_rule_name(acfg.first_layer);
    m["activation_last_layer"] = ptq::layer_rule_name(acfg.last_layer);
    m["activation_calibration"] = "FP network on the calibration images";
  } else {
    m["activation_quantizers"] = "none (weight-only)";
  }
  m["bias_correction"] = cfg.bias_correction;
  if (cfg.bias_correction)
    m["bias_correction_kind"] = "empirical, sequential over layers (Banner et al. 2019)";
  return m;
}

// The expanded-model export and the trial file, on the writing process only.
TrialOutcome write(Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
                   const ptq::CalibrationContext& cc, store::TrialRecord rec, Collective& col) {
  TrialOutcome out;
  const TrialConfig& cfg = p.cfg;
  std::vector<const quant::QuantizedLayer*> qs;
  for (const auto& o : nq.layers) qs.push_back(o.quantized ? &o.q : nullptr);
  std::vector<model::ExportActQuant> ea;
  for (const auto& a : c.act) ea.push_back({a.enabled, a.scale, a.qmin, a.qmax});
  ptq::ActivationQuantizer act(c.act);
  if (!cfg.export_path.empty() && col.writer()) {
    auto ex = model::export_expanded(*p.net, qs, cfg.export_path, ea,
                                     cfg.activations.enabled() ? &act : nullptr);
    rec.manifest["export_path"] = cfg.export_path;
    rec.metrics["export_max_abs_diff"] = ex.max_abs_diff_vs_simulated;
    rec.metrics["export_argmax_agreement"] = ex.argmax_agreement;
  }
  if (!cfg.export_int8_path.empty() && col.writer()) {
    // Output ranges of the integer layers come from (up to 256 of) the calibration images.
    std::vector<int64_t> idx(cc.indices.begin(),
                             cc.indices.begin() + std::min<size_t>(cc.indices.size(), 256));
    if (!cc.data || idx.empty())
      throw ConfigError("/export_int8: needs calibration images (calibration.size > 0)");
    torch::Tensor images = data::load_batch(*cc.data, idx).images;
    auto ex = model::export_int8(*p.net, qs, cfg.export_int8_path, ea,
                                 cfg.activations.enabled() ? &act : nullptr, images);
    rec.manifest["export_int8_path"] = cfg.export_int8_path;
    rec.manifest["export_int8_engine"] =
        at::globalContext().qEngine() == at::QEngine::ONEDNN ? "onednn" : "qnnpack";
    rec.metrics["export_int8_layers"] = ex.int8_layers;
    rec.metrics["export_int8_max_abs_diff"] = ex.max_abs_diff_vs_simulated;
    rec.metrics["export_int8_argmax_agreement"] = ex.argmax_agreement;
  }
  p.net->restore_fp();
  rec.manifest["end_time"] = utc_now_iso();
  rec.manifest["seconds"] = seconds_since(p.t0);
  out.record = std::move(rec);
  if (!cfg.output.empty() && col.writer()) {
    store::write_trial(cfg.output, out.record);
    out.output_path = cfg.output;
  }
  return out;
}

}  // namespace

TrialOutcome run_trial(const json& resolved, TrialContext& ctx, TrialDistribution* dist) {
  Collective col(dist);
  Prepared p = prepare(resolved, ctx, col);
  const ptq::CalibrationContext cc = calibration_context(p);
  const ptq::NetworkQuantization nq = quantize(p, cc, col);
  const Corrections c = correct(p, nq, cc, col);
  const json metrics = evaluate(p, c, col);

  store::TrialRecord rec;
  rec.trial_id = p.id;
  rec.config = resolved;
  rec.calibration_indices = p.calibration_indices;
  rec.eval_indices = p.eval.indices;
  rec.metrics = metrics;
  rec.arrays = p.arrays;
  record_layers(p, nq, c, rec);
  rec.manifest = manifest(p, nq, c, metrics, col);
  return write(p, nq, c, cc, std::move(rec), col);
}

json evaluate_fp(const json& resolved, TrialContext& ctx, const std::string& outputs_path) {
  TrialConfig cfg = parse_trial_config(resolved);
  const int threads = apply_threads(cfg.threads);
  EvalSet set = ctx.eval_set(cfg.data, true, threads);
  model::Network& net = load_trial_network(cfg, *set.data, ctx);
  auto evaluator = eval::make_evaluator(set.data->task(), cfg.detection);
  eval::EvalRun r;
  r.batch_size = eval_batch(cfg, net);
  r.loader = cfg.data.loader(threads);
  r.label = "eval";
  std::string engine;
  auto shard = evaluate_network(net, cfg.eval_engine, nullptr, *evaluator, *set.data, r, &engine);
  if (!outputs_path.empty())
    store::write_eval_outputs(outputs_path, shard, *set.data,
                              {{"model", net.path()}, {"model_sha256", net.sha256()}});
  json m = evaluator->metrics_of(shard, shard);
  if (evaluator->needs_gather()) {
    const auto g = evaluator->gathered_metrics(shard, shard, *set.data);
    for (const auto& [k, v] : g.metrics.items()) m[k] = v;
  }
  json out = {{"model", net.path()},
              {"data", set.data->describe()},
              {"preprocessing", set.data->preprocess().describe()},
              {"threads", threads},
              {"engine", engine},
              {"seconds", shard.seconds},
              {"images_per_second",
               shard.seconds > 0 ? static_cast<double>(shard.n) / shard.seconds : 0.0}};
  // Comparisons with the FP model are meaningless for the FP model itself.
  for (const auto& [k, v] : m.items())
    if (k.rfind("fp_", 0) != 0 && k != "agreement" && k != "kl" && k != "fidelity_map") out[k] = v;
  return out;
}

eval::VocApResult score_detections(const json& resolved, TrialContext& ctx,
                                   const std::vector<double>& table,
                                   const eval::VocApOptions& options) {
  TrialConfig cfg = parse_trial_config(resolved);
  EvalSet set = ctx.eval_set(cfg.data, false, 1);
  if (set.data->task() != data::Task::kDetection)
    throw ConfigError("/data/name: " + cfg.data.spec.name + " is not a detection dataset");
  const int64_t n = set.data->size();
  const int classes = static_cast<int>(set.data->num_classes());
  std::vector<eval::VocDetection> dets;
  for (size_t r = 0; r + 7 <= table.size(); r += 7) {
    eval::VocDetection d;
    d.image = static_cast<int64_t>(table[r]);
    d.label = static_cast<int>(table[r + 1]);
    if (d.image < 0 || d.image >= n || d.label < 0 || d.label >= classes)
      throw InputError("detection row " + std::to_string(r / 7) + ": image " +
                       std::to_string(d.image) + " or class " + std::to_string(d.label) +
                       " out of range (" + std::to_string(n) + " images, " +
                       std::to_string(classes) + " classes)");
    d.score = table[r + 2];
    for (int c = 0; c < 4; ++c) d.box[c] = table[r + 3 + static_cast<size_t>(c)];
    dets.push_back(d);
  }
  return eval::voc_ap(dets, eval::voc_truth(*set.data, data::index_range(0, n)), classes, options);
}

std::string summarize(const store::TrialRecord& r) {
  return eval::summarize_metrics(eval::trial_task_metrics(r.manifest), r.metrics);
}

}  // namespace mpq::sweep
