#include "mpq/sweep/trial.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "mpq/data/calibration.h"
#include "mpq/eval/detection.h"
#include "mpq/eval/metrics.h"
#include "mpq/model/expand.h"
#include "mpq/ptq/activations.h"
#include "mpq/ptq/bias_correction.h"
#include "mpq/quant/layer.h"
#include "mpq/store/data_export.h"
#include "mpq/sweep/trial_stages.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/provenance.h"
#include "mpq/util/sha256.h"
#include "mpq/util/stopwatch.h"
#include "mpq/util/threads.h"

namespace mpq::sweep {
namespace fs = std::filesystem;
using nlohmann::json;
using stages::Collective;
using stages::Corrections;
using stages::Prepared;

// --- the stages -------------------------------------------------------------------------------

namespace {

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
  p.id = trial_id(cfg, p.net->sha256(), data_identity(cfg, ctx));
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
      const auto ta = std::chrono::steady_clock::now();
      c.act = ptq::calibrate_activations(net, acfg, cc, weight_quantized);
      c.act_calibration_seconds = seconds_since(ta);
      for (const auto& L : net.layers()) net.set_weight(L.index, qw[static_cast<size_t>(L.index)]);
    }
    ptq::ActivationQuantizer aq(c.act);
    if (p.cfg.bias_correction) {
      const auto tb = std::chrono::steady_clock::now();
      c.bias = ptq::correct_biases(net, cc, weight_quantized, acfg.enabled() ? &aq : nullptr);
      c.correction_seconds = seconds_since(tb);
    }
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
    // Checked on (up to 32 of) the calibration images, else the evaluation images, when the
    // model takes a batch of them.
    const data::Dataset* images = cc.data && !cc.indices.empty() ? cc.data : p.eval.data.get();
    torch::Tensor check;
    if (images && images->size() > 0 && images->fixed_size() &&
        p.net->input_kind() == model::InputKind::kTensor) {
      std::vector<int64_t> idx =
          cc.data == images
              ? std::vector<int64_t>(cc.indices.begin(),
                                     cc.indices.begin() + std::min<size_t>(cc.indices.size(), 32))
              : data::index_range(0, std::min<int64_t>(images->size(), 32));
      check = data::load_batch(*images, idx).images;
    }
    auto ex = model::export_expanded(*p.net, qs, cfg.export_path, ea,
                                     cfg.activations.enabled() ? &act : nullptr, check);
    rec.manifest["export_path"] = cfg.export_path;
    rec.manifest["export_check_inputs"] =
        std::to_string(ex.check_inputs) + (!ex.check_on_images ? " random inputs (seed 1234)"
                                           : images == cc.data ? " calibration images"
                                                               : " evaluation images");
    rec.metrics["export_max_abs_diff"] = ex.max_abs_diff_vs_simulated;
    rec.metrics["export_relative_diff"] = ex.relative_diff;
    rec.metrics["export_argmax_agreement"] = ex.argmax_agreement;
    // 1: the difference exceeded the bound but float32 rounding explains it (kept, warned).
    rec.metrics["export_check_inconclusive"] = ex.check_inconclusive ? 1 : 0;
    if (ex.check_inconclusive) rec.metrics["export_rounding_sensitivity"] = ex.rounding_sensitivity;
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
  // Wall time of the steps after quantize_network (its own times are quant_seconds and
  // calibration_seconds): a trial's cost is the sum.
  if (p.cfg.activations.enabled())
    rec.metrics["activation_calibration_seconds"] = c.act_calibration_seconds;
  if (p.cfg.bias_correction) rec.metrics["correction_seconds"] = c.correction_seconds;
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
    if (k.rfind("fp_", 0) != 0 && k != "agreement" && k != "agreement_top5" && k != "kl" &&
        k != "sqnr_db" && k != "fidelity_map")
      out[k] = v;
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
