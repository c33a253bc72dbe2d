// The record stage of a trial: per-layer records (errors, points, costs), the network-wide cost
// and error metrics, and the manifest (docs/trial-file-format.md describes every field).
#include <cmath>

#include "mpq/data/dataset.h"
#include "mpq/model/network.h"
#include "mpq/quant/layer.h"
#include "mpq/sweep/trial_stages.h"
#include "mpq/util/provenance.h"

namespace mpq::sweep::stages {

namespace {

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

// Per-layer records and the network-wide cost and error metrics.
void record_layers(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
                   store::TrialRecord& rec) {
  const model::Network& net = *p.net;
  int64_t channels = 0, points = 0, macs = 0, extra_macs = 0;
  double weight_bits = 0, extra_weight_bits = 0, err_total = 0, w_total = 0;
  double bops = 0, base_bops = 0;
  double extra_in_channels = 0, in_channels = 0;
  int quantized = 0;
  int64_t quantized_weights = 0;  // of layers the probe ran
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
    if (info.calls > 0) quantized_weights += info.params();
    channels += o.q.c_out;
    points += o.q.total_points();
    macs += info.macs;
    extra_macs +=
        static_cast<int64_t>(std::llround(quant::extra_macs(o.q, static_cast<double>(info.macs))));
    // The layer's base width: the trial's (or the first/last-layer rule's); layer_bits records
    // it apart from the width it chose.
    const double base = o.attrs.value("base_bits", o.q.bits);
    weight_bits += static_cast<double>(info.params()) * base;
    extra_weight_bits += o.q.code_bits() - static_cast<double>(info.params()) * base;
    // Bit operations (MACs x weight bits, activations' width fixed): every point's MACs at its
    // width, against all MACs at the base width.
    double point_bits = 0;
    for (size_t p = 0; p < o.q.point_channel.size(); ++p)
      point_bits += o.q.channel_bits.empty()
                        ? o.q.bits
                        : o.q.channel_bits[static_cast<size_t>(o.q.point_channel[p])];
    const double points_n = static_cast<double>(std::max<size_t>(1, o.q.point_channel.size()));
    const double layer_macs = static_cast<double>(info.macs);
    bops += (layer_macs + quant::extra_macs(o.q, layer_macs)) * point_bits / points_n;
    base_bops += layer_macs * base;
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
  m["extra_bops_pct"] = pct(bops - base_bops, base_bops);
  m["extra_input_channels_pct"] = pct(extra_in_channels, in_channels);
  m["weight_rel_error"] = w_total > 0 ? std::sqrt(err_total / w_total) : 0.0;
  // Coverage: the quantized share of all weights the model runs with, the layers the probe ran
  // plus the weight-bearing operators mpq does not quantize (model/attention.h).
  const int64_t fp_ops = net.unquantized_weight_count();
  m["weights_unquantizable"] = fp_ops;
  m["weight_coverage_pct"] = pct(static_cast<double>(quantized_weights),
                                 static_cast<double>(net.executed_layer_weights() + fp_ops));
  m["attention_rewritten"] = net.attention_rewritten();
  for (const auto& [k, v] : nq.summary.items()) m[k] = v;
}

// Provenance and every convention that changes results (method.md §7).
namespace {

/// The model, its preparation (BN folding, equalization) and the task's conventions.
void add_model_manifest(json& m, const TrialConfig& cfg, const model::Network& net,
                        const data::Dataset& eval_data) {
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
    m["detection_voc07_thresholds"] = eval::voc07_thresholds_name(cfg.detection.voc07_thresholds);
    m["detection_label_offset"] = cfg.detection.label_offset;
    m["detection_headline"] = eval::voc_metric_name(cfg.detection.headline);
    m["detection_fidelity_score"] = cfg.detection.fidelity_score;
  }
}

/// The dataset, its preprocessing, the evaluation and calibration samples.
void add_data_manifest(json& m, const Prepared& p, const json& metrics) {
  const TrialConfig& cfg = p.cfg;
  const data::Dataset& eval_data = *p.eval.data;
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
  m["calibration_batch_size"] = calibration_batch(cfg, *p.net);
  m["bad_images_skipped"] = metrics.value("skipped_images", int64_t{0});
  m["on_bad_image"] = cfg.data.skip_bad_images ? "skip" : "error";
  m["calibration_split"] = cfg.data.calibration_split;
  m["calibration_size"] = static_cast<int64_t>(p.calibration_indices.size());
  m["calibration_seed"] = cfg.calibration.seed;
}

/// The weight method and its settings, the activation quantizers, bias correction.
void add_quantization_manifest(json& m, const TrialConfig& cfg, const ptq::NetworkQuantization& nq,
                               const Corrections& c) {
  m["calibration_used"] = nq.used_calibration;
  m["calibration_statistics"] =
      nq.used_calibration
          ? (cfg.weights.statistics == ptq::Statistics::kFp ? "fp" : "quantized_prefix")
          : "none";
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
}

}  // namespace

/// The trial's manifest: provenance, run, model, data, quantization (docs/trial-file-format.md).
json manifest(const Prepared& p, const ptq::NetworkQuantization& nq, const Corrections& c,
              const json& metrics, Collective& col) {
  json m = provenance_json();
  m["trial_id"] = p.id;
  m["threads"] = p.threads;
  m["start_time"] = p.start_time;
  m["model_path"] = p.model_path;
  m["ranks"] = col.dist() ? col.dist()->size() : 1;
  m["eval_engine"] = p.eval_engine;
  m["data_seconds"] = p.data_seconds;
  m["fp_eval_seconds"] = p.fp_eval_seconds;
  add_model_manifest(m, p.cfg, *p.net, *p.eval.data);
  add_data_manifest(m, p, metrics);
  add_quantization_manifest(m, p.cfg, nq, c);
  return m;
}

}  // namespace mpq::sweep::stages
