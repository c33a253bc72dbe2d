#include "mpq/sweep/trial.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "mpq/data/calibration.h"
#include "mpq/data/fashion_mnist.h"
#include "mpq/model/expand.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/bias_correction.h"
#include "mpq/ptq/quantize.h"
#include "mpq/quant/layer.h"
#include "mpq/sweep/trial_config.h"
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
  std::string key = path + "|" + (o.fold_bn ? "fold" : "nofold") + "|";
  for (auto s : o.input_shape) key += std::to_string(s) + ",";
  auto it = networks_.find(key);
  if (it == networks_.end()) {
    auto net = std::make_unique<model::Network>(model::Network::load(path, o));
    it = networks_.emplace(key, std::move(net)).first;
  }
  it->second->restore_fp();
  return *it->second;
}

const data::ClassificationDataset& TrialContext::dataset(const std::string& name,
                                                         const std::string& root,
                                                         const std::string& split, int64_t limit) {
  std::string key = name + "|" + root + "|" + split + "|" + std::to_string(limit);
  auto it = datasets_.find(key);
  if (it == datasets_.end()) {
    std::unique_ptr<data::ClassificationDataset> d;
    if (name == "fashion-mnist")
      d = data::load_fashion_mnist(
          root, split == "train" ? data::Split::kTrain : data::Split::kTest, limit);
    else
      throw ConfigError("/data/name: unknown dataset '" + name + "'");
    it = datasets_.emplace(key, std::move(d)).first;
  }
  return *it->second;
}

void TrialContext::put_fp_reference(const std::string& net_key,
                                    const data::ClassificationDataset& data,
                                    const eval::EvalOptions& options, FpReference ref) {
  fp_[net_key + "|" + data.fingerprint() + "|" + std::to_string(options.limit)] = std::move(ref);
}

std::string fp_network_key(const model::Network& net, const eval::EvalOptions& o) {
  return net.sha256() + (net.fold_bn() ? "|fold" : "|nofold") + "|" + std::to_string(o.begin) +
         ":" + std::to_string(o.end) + "|" + std::to_string(o.batch_size);
}

eval::EvalOptions eval_options(const json& cfg) {
  eval::EvalOptions eo;
  eo.batch_size = cfg["data"]["batch_size"].get<int64_t>();
  eo.limit = cfg["data"]["eval_limit"].get<int64_t>();
  return eo;
}

int64_t TrialContext::dataset_size(const std::string& name, const std::string& root,
                                   const std::string& split) {
  std::string key = name + "|" + root + "|" + split + "|0";
  auto it = datasets_.find(key);
  if (it != datasets_.end()) return it->second->size();
  if (name != "fashion-mnist") throw ConfigError("/data/name: unknown dataset '" + name + "'");
  return data::fashion_mnist_size(root,
                                  split == "train" ? data::Split::kTrain : data::Split::kTest);
}

const FpReference& TrialContext::fp_reference(model::Network& net, const std::string& net_key,
                                              const data::ClassificationDataset& data,
                                              const eval::EvalOptions& options) {
  std::string key = net_key + "|" + data.fingerprint() + "|" + std::to_string(options.limit);
  auto it = fp_.find(key);
  if (it == fp_.end()) {
    net.restore_fp();
    eval::EvalOptions o = options;
    o.label = "eval FP model";
    FpReference ref{eval::evaluate(net, data, o)};
    it = fp_.emplace(key, std::move(ref)).first;
  }
  return it->second;
}

// --- running ----------------------------------------------------------------------------------

namespace {

size_t layers_count(const model::Network& net) {
  return net.layers().size();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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

}  // namespace

std::string data_identity(const json& cfg, TrialContext& ctx) {
  const std::string name = cfg["data"]["name"], root = cfg["data"]["root"];
  std::string fp = ctx.dataset(name, root, "test", 0).fingerprint();
  if (uses_calibration_data(cfg))
    fp = sha256_hex(fp + "\n" + ctx.dataset(name, root, "train", 0).fingerprint());
  return fp;
}

TrialOutcome run_trial(const json& cfg, TrialContext& ctx, TrialDistribution* dist) {
  auto t_start = std::chrono::steady_clock::now();
  std::string start_time = utc_now_iso();
  int threads = apply_threads(cfg["threads"].get<int>());

  for (const char* key : {"output", "export"}) {
    const std::string path = cfg[key].get<std::string>();
    if (path.empty()) continue;
    fs::path p(path);
    fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir))
      throw ConfigError(std::string("/") + key + ": directory " + dir.string() + " of " + path +
                        " does not exist");
  }
  const std::string output = cfg["output"].get<std::string>();

  // With several processes, a failure on one must become a failure on all before the next
  // collective step, or the others would wait forever.
  auto agreed = [&](const auto& f) {
    if (!dist) return f();
    std::string error;
    try {
      return f();
    } catch (const std::exception& e) {
      error = e.what();
    }
    dist->agree(error);
    MPQ_ASSERT(false, "agree() returned after a local error");
    return f();
  };

  // Data first: a model reference may need the training split to train a default model.
  const json& dcfg = cfg["data"];
  const std::string dname = dcfg["name"], droot = dcfg["root"];
  const json& mcfg = cfg["model"];
  model::LoadOptions lo;
  lo.fold_bn = mcfg["fold_bn"].get<bool>();
  lo.input_shape = mcfg["input_shape"].get<std::vector<int64_t>>();
  struct Setup {
    const data::ClassificationDataset* test;
    const data::ClassificationDataset* train;  // only loaded when calibration images are used
    int64_t train_size;
    std::string model_path;
    model::Network* net;
  };
  const bool calibrated = uses_calibration_data(cfg);
  Setup su = agreed([&] {
    Setup x;
    x.test = &ctx.dataset(dname, droot, "test", 0);
    x.train = calibrated ? &ctx.dataset(dname, droot, "train", 0) : nullptr;
    x.train_size = calibrated ? x.train->size() : ctx.dataset_size(dname, droot, "train");
    x.model_path = train::resolve_model_ref(mcfg["path"].get<std::string>(),
                                            mcfg["cache_dir"].get<std::string>(), droot);
    if (lo.input_shape.empty()) lo.input_shape = x.test->image_shape();
    x.net = &ctx.network(x.model_path, lo);
    return x;
  });
  if (dist) dist->agree("");
  const auto& test = *su.test;
  const std::string model_path = su.model_path;
  model::Network& net = *su.net;
  std::string id = trial_id(cfg, net.sha256(), data_identity(cfg, ctx));

  eval::EvalOptions eo = eval_options(cfg);
  if (dist) {
    // Shard the evaluation set on batch boundaries: every rank sees exactly the batches a
    // single-process run would.
    int64_t n = test.size();
    if (eo.limit > 0 && eo.limit < n) n = eo.limit;
    int64_t batches = (n + eo.batch_size - 1) / eo.batch_size;
    eo.begin = batches * dist->rank() / dist->size() * eo.batch_size;
    eo.end = std::min(n, batches * (dist->rank() + 1) / dist->size() * eo.batch_size);
  }
  const FpReference& fp =
      *agreed([&] { return &ctx.fp_reference(net, fp_network_key(net, eo), test, eo); });
  if (dist) dist->agree("");

  const json& ccfg = cfg["calibration"];
  auto calib = data::calibration_indices(su.train_size, ccfg["size"].get<int64_t>(),
                                         ccfg["seed"].get<uint64_t>());

  // --- quantize weights ---
  auto wcfg = ptq::parse_weight_config(cfg);
  ptq::CalibrationContext cc;
  cc.data = su.train;
  cc.indices = calib;
  cc.options.batch_size = ccfg["batch_size"].get<int64_t>();
  cc.options.max_bytes_per_layer = ccfg["max_stats_mb"].get<int64_t>() << 20;
  cc.options.seed = ccfg["seed"].get<uint64_t>();
  cc.cache_dir = ccfg["cache_dir"].get<std::string>();
  cc.cache_description = {{"model_sha256", net.sha256()},
                          {"fold_bn", lo.fold_bn},
                          {"input_shape", lo.input_shape},
                          {"data", calibrated ? su.train->fingerprint() : ""},
                          {"indices_sha256", sha256_hex(json(calib).dump())}};
  net.restore_fp();
  auto nq = ptq::quantize_network(net, wcfg, cc, dist);
  std::vector<bool> weight_quantized;
  for (const auto& o : nq.layers) weight_quantized.push_back(o.quantized);

  // Activation quantizers, calibrated on the FP network's inputs, then bias correction measured
  // with them in place. Both run identically on every rank of a layer-parallel trial.
  const auto acfg = ptq::parse_activation_config(cfg);
  const bool bias_correction = cfg["bias_correction"].get<bool>();
  if ((acfg.enabled() || bias_correction) && su.train == nullptr)
    MPQ_ASSERT(false, "calibration split not loaded");
  std::vector<ptq::ActQuant> act(layers_count(net));
  std::vector<json> bias_stats(layers_count(net), json::object());
  agreed([&] {
    if (acfg.enabled()) {
      std::vector<torch::Tensor> qw;
      for (const auto& L : net.layers()) qw.push_back(net.weight(L.index).clone());
      for (const auto& L : net.layers()) net.set_weight(L.index, net.fp_weight(L.index));
      act = ptq::calibrate_activations(net, acfg, cc, weight_quantized);
      for (const auto& L : net.layers()) net.set_weight(L.index, qw[static_cast<size_t>(L.index)]);
    }
    ptq::ActivationQuantizer aq(act);
    if (bias_correction)
      bias_stats = ptq::correct_biases(net, cc, weight_quantized, acfg.enabled() ? &aq : nullptr);
    return 0;
  });
  if (dist) dist->agree("");
  ptq::ActivationQuantizer act_quantizer(act);

  const auto& layers = net.layers();
  store::TrialRecord rec;
  int64_t channels = 0, points = 0, macs = 0, extra_macs = 0;
  double weight_bits = 0, extra_weight_bits = 0, err_total = 0, w_total = 0;
  int quantized = 0;
  double extra_in_channels = 0, in_channels = 0;
  for (const auto& info : layers) {
    const auto& o = nq.layers[static_cast<size_t>(info.index)];
    const torch::Tensor& w = net.fp_weight(info.index);
    const double err = o.quantized ? quant::layer_weight_sq_error(w.data_ptr<float>(), o.q) : 0.0;
    const double w_sq = w.pow(2).sum().item<double>();
    rec.layers.push_back(layer_record(info, o, err, w_sq, w));
    auto& attrs = rec.layers.back().attrs;
    const auto& a = act[static_cast<size_t>(info.index)];
    attrs["act_bits"] = a.enabled ? a.bits : 32;
    if (a.enabled) {
      attrs["act_unsigned"] = a.is_unsigned;
      attrs["act_scale"] = a.scale;
      attrs["act_observed_min"] = a.observed_min;
      attrs["act_observed_max"] = a.observed_max;
    }
    for (const auto& [k, v] : bias_stats[static_cast<size_t>(info.index)].items()) attrs[k] = v;
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

  // --- evaluate ---
  eval::EvalOptions qo = eo;
  qo.label = "eval quantized";
  auto qres = agreed([&] {
    model::HookScope scope(acfg.enabled() ? static_cast<model::LayerInputHook*>(&act_quantizer)
                                          : nullptr);
    return eval::evaluate(net, test, qo);
  });
  if (dist) dist->agree("");
  auto [agree, kl_sum] = eval::fidelity_sums(fp.result.logits, qres.logits);
  // Counts and sums; reduced over ranks when the evaluation is sharded.
  double sums[7] = {qres.correct1, qres.correct5, fp.result.correct1,         fp.result.correct5,
                    agree,         kl_sum,        static_cast<double>(qres.n)};
  if (dist) dist->allreduce_sum(sums, 7);
  const double n_eval = sums[6];
  auto frac = [&](double v) { return n_eval > 0 ? v / n_eval : 0.0; };
  qres.top1 = frac(sums[0]);
  qres.top5 = frac(sums[1]);
  qres.n = static_cast<int64_t>(n_eval);
  eval::Fidelity fid{frac(sums[4]), frac(sums[5])};
  const double fp_top1 = frac(sums[2]), fp_top5 = frac(sums[3]);

  rec.trial_id = id;
  rec.config = cfg;
  rec.calibration_indices = calib;
  rec.metrics = {
      {"top1", qres.top1},
      {"top5", qres.top5},
      {"agreement", fid.agreement},
      {"kl", fid.kl},
      {"fp_top1", fp_top1},
      {"fp_top5", fp_top5},
      {"n_eval", qres.n},
      {"eval_seconds", qres.seconds},
      {"images_per_second", qres.images_per_second},
      {"quantized_layers", quantized},
      {"total_points", points},
      {"extra_points", points - channels},
      {"extra_channels_pct",
       channels ? 100.0 * static_cast<double>(points - channels) / static_cast<double>(channels)
                : 0.0},
      {"extra_macs_pct",
       macs ? 100.0 * static_cast<double>(extra_macs) / static_cast<double>(macs) : 0.0},
      {"extra_weight_bits_pct", weight_bits > 0 ? 100.0 * extra_weight_bits / weight_bits : 0.0},
      {"extra_input_channels_pct", in_channels > 0 ? 100.0 * extra_in_channels / in_channels : 0.0},
      {"weight_rel_error", w_total > 0 ? std::sqrt(err_total / w_total) : 0.0}};
  for (const auto& [k, v] : nq.summary.items()) rec.metrics[k] = v;

  json m = provenance_json();
  m["trial_id"] = id;
  m["threads"] = threads;
  m["start_time"] = start_time;
  m["model_path"] = model_path;
  m["model_sha256"] = net.sha256();
  m["model_meta"] = net.meta();
  m["model_input_shape"] = json(net.input_shape()).dump();
  m["bn_folded"] = lo.fold_bn;
  m["bn_layers_before_fold"] = net.bn_before_fold();
  m["bn_layers_after_fold"] = net.bn_after_fold();
  m["dataset"] = dname;
  m["dataset_fingerprint"] = test.fingerprint();
  m["dataset_description"] = test.describe();
  m["preprocessing"] = test.preprocessing();
  m["eval_split"] = "test";
  m["eval_images"] = qres.n;
  m["calibration_split"] = "train";
  m["calibration_size"] = static_cast<int64_t>(calib.size());
  m["calibration_seed"] = ccfg["seed"];
  m["calibration_used"] = nq.used_calibration;
  m["calibration_statistics"] =
      nq.used_calibration ? ccfg["statistics"].get<std::string>() : "none";
  m["ranks"] = dist ? dist->size() : 1;
  m["weight_method"] = wcfg.method;
  m["weight_bits"] = wcfg.bits;
  m["weight_granularity"] = quant::granularity_name(wcfg.granularity);
  m["weight_search"] =
      wcfg.method == "rtn" ? "max range" : cfg["weights"]["search"].get<std::string>();
  m["first_layer"] = wcfg.first_layer;
  m["last_layer"] = wcfg.last_layer;
  m["activation_bits"] = acfg.bits;
  if (acfg.enabled()) {
    int n_unsigned = 0, n_quant = 0;
    for (const auto& a : act)
      if (a.enabled) {
        ++n_quant;
        n_unsigned += a.is_unsigned ? 1 : 0;
      }
    m["activation_quantizers"] =
        "per-tensor fake quant (torch fake_quantize_per_tensor_affine) at the inputs of " +
        std::to_string(n_quant) + " quantized layers; " + std::to_string(n_unsigned) +
        " unsigned (input never negative on calibration data), the rest signed symmetric";
    m["activation_range"] = acfg.range;
    m["activation_first_layer"] = acfg.first_layer;
    m["activation_last_layer"] = acfg.last_layer;
    m["activation_calibration"] = "FP network on the calibration images";
  } else {
    m["activation_quantizers"] = "none (weight-only)";
  }
  m["bias_correction"] = bias_correction;
  if (bias_correction)
    m["bias_correction_kind"] = "empirical, sequential over layers (Banner et al. 2019)";

  TrialOutcome out;
  const bool writer = !dist || dist->rank() == 0;
  const std::string export_path = cfg["export"].get<std::string>();
  if (!export_path.empty() && writer) {
    std::vector<const quant::QuantizedLayer*> qs;
    for (const auto& o : nq.layers) qs.push_back(o.quantized ? &o.q : nullptr);
    std::vector<model::ExportActQuant> ea;
    for (const auto& a : act) ea.push_back({a.enabled, a.scale, a.qmin, a.qmax});
    auto ex =
        model::export_expanded(net, qs, export_path, ea, acfg.enabled() ? &act_quantizer : nullptr);
    m["export_path"] = export_path;
    rec.metrics["export_max_abs_diff"] = ex.max_abs_diff_vs_simulated;
    rec.metrics["export_argmax_agreement"] = ex.argmax_agreement;
  }
  net.restore_fp();
  m["end_time"] = utc_now_iso();
  m["seconds"] = seconds_since(t_start);
  rec.manifest = m;
  out.record = std::move(rec);
  if (!output.empty() && writer) {
    store::write_trial(output, out.record);
    out.output_path = output;
  }
  return out;
}

std::string summarize(const store::TrialRecord& r) {
  char buf[256];
  const auto& m = r.metrics;
  std::snprintf(
      buf, sizeof buf,
      "top-1 %.2f%% (FP %.2f%%), top-5 %.2f%%, agreement %.2f%%, KL %.4f, extra MACs %.1f%%",
      100 * m.value("top1", 0.0), 100 * m.value("fp_top1", 0.0), 100 * m.value("top5", 0.0),
      100 * m.value("agreement", 0.0), m.value("kl", 0.0), m.value("extra_macs_pct", 0.0));
  return buf;
}

}  // namespace mpq::sweep
