#include "mpq/sweep/trial_config.h"

#include "mpq/train/pretrained.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::sweep {
using nlohmann::json;

const Schema& trial_schema() {
  static const Schema s = [] {
    Schema k;
    k.string("/model/path", "default:resnet20",
             "TorchScript archive, or default:resnet20 / default:mobilenetv2 / default:ssdlite, "
             "pretrained:efficientnet_lite0 / _lite1 / _lite2 (exported on first use), "
             "optionally @seed=N for an independently trained copy (trained once, cached)")
        .boolean("/model/fold_bn", true, "fold BatchNorm into the preceding conv before quantizing")
        .int_list("/model/input_shape", {}, 1, 1 << 16,
                  "C,H,W for the shape probe (empty: from the archive, else the dataset)")
        .string("/model/cache_dir", "results/models", "where default models are trained and cached")
        .choice("/model/detection_ops", "mpq", {"mpq", "torchvision"},
                "who provides torchvision::nms to detector archives: mpq's own, or "
                "python3-torchvision's ops library")
        .boolean("/model/equalize/enabled", false,
                 "cross-layer equalization with bias absorption before quantizing (Nagel et al. "
                 "2019; docs/method.md): conv/depthwise/linear pairs through ReLU or ReLU6")
        .choice("/model/equalize/relu6", "clip", {"clip", "replace", "skip"},
                "pairs through a ReLU6 clip: clip = equalize and scale the clip per channel (FP "
                "function unchanged), replace = replace it by ReLU first (the paper), skip")
        .boolean("/model/equalize/absorb_bias", true,
                 "absorb high biases into the next layer (from the BatchNorm after the first "
                 "layer: c = max(0, beta - 3 gamma))")
        .integer("/model/equalize/max_passes", 100, 1, 10000,
                 "passes over all pairs at most (stops when no scale moves by 1e-6)")
        .choice("/data/name", "fashion-mnist", data::dataset_names(),
                "evaluation/calibration dataset (docs/datasets.md)")
        .string("/data/root", "",
                "dataset directory (\"\" = the dataset's default; fashion-mnist: "
                "/usr/share/datasets/fashion-mnist)")
        .choice("/data/layout", "auto", {"auto", "folder", "flat", "kaggle"},
                "imagenet: directory layout (auto = detected)")
        .choice("/data/year", "2007", {"2007", "2012"},
                "voc: VOC2007 or VOC2012 (VOCdevkit/VOC<year>)")
        .string("/data/imagenet/ground_truth", "",
                "imagenet flat layout: ILSVRC2012_validation_ground_truth.txt (\"\" = search the "
                "devkit)")
        .string("/data/imagenet/meta", "",
                "imagenet flat layout: the devkit's meta.mat, or a synset list in ILSVRC2012_ID "
                "order (\"\" = search)")
        .string("/data/eval_split", "",
                "split to evaluate on (\"\" = the dataset's: fashion-mnist test, imagenet val, "
                "image_folder the root itself)")
        .integer("/data/eval_limit", 0, 0, 1LL << 40,
                 "evaluate on the first N images of the evaluation split (or subset; 0 = all)")
        .integer("/data/eval_subset", 0, 0, 1LL << 40,
                 "evaluate on a seeded, class-stratified subset of N images (0 = all)")
        .integer("/data/eval_subset_seed", 0, 0, 1LL << 62, "seed of /data/eval_subset")
        .integer("/data/batch_size", 0, 0, 1 << 20,
                 "evaluation batch size (0 = 500 for fashion-mnist, 64 otherwise; made smaller to "
                 "fit /data/max_batch_mb)")
        .integer("/data/max_batch_mb", 256, 0, 1 << 24,
                 "bound on one batch's largest layer input or output in MiB: evaluation and "
                 "calibration batches are made smaller to fit it (0 = no bound)")
        .integer("/data/workers", 0, 0, 4096,
                 "image decoding threads (0 = the trial's thread count)")
        .integer("/data/prefetch", 2, 0, 64, "batches decoded ahead of the forward pass")
        .boolean("/data/cache", true,
                 "keep decoded, preprocessed images in a shared on-disk cache (file datasets)")
        .string("/data/cache_dir", "results/cache/images", "where the image cache lives")
        .choice("/data/fingerprint", "listing", {"listing", "content"},
                "dataset fingerprint: file list with sizes (cheap), or every file's bytes")
        .choice("/data/on_bad_image", "error", {"error", "skip"},
                "an unreadable image fails the trial, or is skipped and counted")
        .choice("/data/preprocess/preset", "auto",
                {"auto", "torchvision-v1", "torchvision-v2", "inception", "fashion-mnist", "none"},
                "preprocessing preset (auto = the dataset's default); fields below override it")
        .integer("/data/preprocess/resize", -1, -1, 1 << 16,
                 "short side after resizing (0 = none, -1 = from the preset)")
        .integer("/data/preprocess/crop", -1, -1, 1 << 16,
                 "centre crop size (0 = none, -1 = from the preset)")
        .choice("/data/preprocess/interpolation", "preset", {"preset", "bilinear", "bicubic"},
                "resize filter (PIL's, antialiased)")
        .choice("/data/preprocess/color", "preset", {"preset", "rgb", "gray"},
                "PIL convert(\"RGB\") or convert(\"L\")")
        .int_list("/data/preprocess/size", {}, 1, 1 << 16,
                  "resize to exactly [height, width], aspect not kept (detectors that take a fixed "
                  "size; [] = off)")
        .number_list("/data/preprocess/mean", {}, -1e6, 1e6,
                     "per-channel mean of Normalize ([] = from the preset)")
        .number_list("/data/preprocess/std", {}, -1e6, 1e6,
                     "per-channel std of Normalize ([] = from the preset)")
        .integer("/calibration/size", 256, 1, 1 << 24,
                 "calibration images drawn from the calibration split")
        .string("/calibration/split", "",
                "split the calibration images come from (\"\" = the dataset's: train; "
                "image_folder: the root)")
        .integer("/calibration/seed", 0, 0, 1LL << 62, "seed of the calibration sample")
        .choice("/calibration/statistics", "fp", {"fp", "quantized_prefix"},
                "input statistics from the FP network, or from the network with earlier layers "
                "quantized")
        .integer("/calibration/batch_size", 64, 1, 1 << 16,
                 "calibration batch size (made smaller to fit /data/max_batch_mb)")
        .integer("/calibration/max_stats_mb", 256, 1, 1 << 20,
                 "per-layer memory bound of the statistics; larger Σ are replaced by sampled rows")
        .string("/calibration/cache_dir", "results/cache",
                "cache of calibration statistics (\"\" = none)")
        .choice("/weights/method", "rtn",
                {"rtn", "mse", "aciq", "percentile", "ocs", "bit_alloc", "multipoint", "gptq",
                 "adaround", "layer_bits"},
                "rtn: max range; mse: MSE-optimal point; aciq / percentile: clipping; ocs: outlier "
                "channel splitting; bit_alloc: per-channel bits; multipoint; gptq: GPTQ on the "
                "calibration statistics; adaround: learned rounding (on the calibration "
                "statistics, or on data: /weights/adaround/objective); layer_bits: per-layer bit "
                "widths under a budget (true mixed precision)")
        .integer("/weights/bits", 4, 2, 8, "weight bits b: codes in {-(2^(b-1)-1) .. 2^(b-1)-1}")
        .choice("/weights/granularity", "per_channel", {"per_channel", "per_layer"},
                "one scale per output channel, or one per layer (per-tensor)")
        .choice("/weights/search", "exact", {"exact", "grid"},
                "step search of mse/multipoint points: exact breakpoint sweep, or a candidate grid")
        .integer("/weights/grid_candidates", 1024, 1, 1 << 20, "candidates of the grid search")
        .choice("/weights/aciq/prior", "laplace", {"laplace", "gaussian"},
                "aciq: prior fitted to the weights")
        .number("/weights/percentile/p", 99.99, 0.0, 100.0,
                "percentile: clip at this percentile of |w|")
        .number("/weights/ocs/expand_ratio", 0.02, 0.0, 1.0,
                "ocs: split this fraction of each layer's input channels")
        .choice("/weights/ocs/range", "max", {"max", "mse"}, "ocs: range of the split weight")
        .number("/weights/bit_alloc/average_bits", 0.0, 0.0, 8.0,
                "bit_alloc: average bits per weight of every layer (0 = /weights/bits)")
        .choice("/weights/bit_alloc/metric", "output", {"output", "weight"},
                "bit_alloc: rank channels by output error (calibration) or weight error")
        .number("/weights/layer_bits/budget", 0.1, 0.0, 15.0,
                "layer_bits: extra bit operations as a fraction of the network's MACs at "
                "/weights/bits (0.2 = the cost of 20% extra MACs, as multipoint with "
                "budget_unit macs)")
        .integer("/weights/layer_bits/max_bits", 8, 2, 8, "layer_bits: widest layer")
        .choice("/weights/gptq/grid", "max", {"max", "mse"},
                "gptq: step of each channel (or of the layer) from the largest magnitude or the "
                "MSE-optimal "
                "point, chosen before the sweep")
        .number("/weights/gptq/damp", 0.01, 0.0, 1.0,
                "gptq: damping λ = damp · mean(diag H) added to the diagonal")
        .boolean("/weights/gptq/act_order", false,
                 "gptq: quantize columns by descending diag H (act-order)")
        .integer("/weights/gptq/block", 128, 1, 1 << 20, "gptq: columns per block of lazy updates")
        .integer("/weights/multipoint/max_points", 4, 1, 16, "most points a channel may get")
        .integer("/weights/adaround/iterations", 10000, 1, 1 << 24,
                 "adaround: Adam iterations per layer (the paper: 10k-20k)")
        .number("/weights/adaround/lambda", 0.01, 0.0, 1e6, "adaround: regularizer weight λ")
        .number("/weights/adaround/beta_start", 20.0, 0.0, 1e3,
                "adaround: β of the regularizer when it starts")
        .number("/weights/adaround/beta_end", 2.0, 0.0, 1e3, "adaround: β at the end")
        .number("/weights/adaround/warmup", 0.2, 0.0, 0.99,
                "adaround: fraction of iterations without the regularizer")
        .number("/weights/adaround/lr", 1e-3, 0.0, 1.0, "adaround: Adam learning rate")
        .choice("/weights/adaround/grid", "mse", {"mse", "max"},
                "adaround: step of each channel (or of the layer), fixed before the optimization")
        .choice("/weights/adaround/objective", "statistics", {"statistics", "data"},
                "adaround: reconstruct the layer's output from the calibration statistics (FP "
                "inputs, no activation, no data pass) or on the calibration data with the "
                "earlier layers quantized and the activation after the layer (the paper's "
                "asymmetric reconstruction)")
        .integer("/weights/adaround/batch_size", 32, 1, 1 << 20,
                 "adaround, objective data: calibration inputs per iteration (drawn with /seed)")
        .choice("/weights/multipoint/first_point", "mse", {"mse", "rtn", "gptq", "adaround"},
                "first point of every channel: MSE-optimal (the paper's), max-range "
                "round-to-nearest, GPTQ's or AdaRound's (settings in /weights/gptq, "
                "/weights/adaround); extra points go greedily on what it leaves")
        .choice("/weights/multipoint/policy", "budget",
                {"budget", "threshold", "uniform", "random", "weight_error"},
                "how extra points are allocated (method.md §3)")
        .number("/weights/multipoint/budget", 0.10, 0.0, 15.0,
                "extra points as a fraction of output channels (or of MACs), e.g. 0.1 = 10%")
        .choice("/weights/multipoint/budget_unit", "channels", {"channels", "macs"},
                "what the budget counts")
        .choice("/weights/multipoint/scope", "network", {"network", "layer"},
                "spend the budget across the whole network or layer by layer")
        .number("/weights/multipoint/threshold", 0.01, 0.0, 1.0,
                "threshold policy: add points while the relative error exceeds this")
        .choice("/weights/multipoint/threshold_metric", "output", {"output", "weight"},
                "threshold policy: relative output error (calibration) or relative squared weight "
                "error")
        .integer("/weights/multipoint/points", 2, 1, 16, "uniform policy: points per channel")
        .choice("/weights/multipoint/refit", "none", {"none", "weight", "output"},
                "least-squares refit of the steps once codes are fixed (beyond the paper)")
        .boolean("/weights/multipoint/weighted", false,
                 "importance-weighted greedy objective with s = diag(Σ) (beyond the paper)")
        .boolean("/weights/multipoint/gptq_feedback", false,
                 "first_point gptq: after allocation, re-run GPTQ's column sweep so later "
                 "columns absorb the error left after all of a channel's points, not the first "
                 "point's (beyond the paper; rows that get worse keep their codes)")
        .choice("/weights/first_layer", "quantize", {"quantize", "fp", "8bit"},
                "first layer: quantized like the rest, kept full precision, or 8-bit")
        .choice("/weights/last_layer", "quantize", {"quantize", "fp", "8bit"},
                "last layer: quantized like the rest, kept full precision, or 8-bit")
        .integer("/activations/bits", 32, -1000000, 1000000,
                 "activation bits in [2, 8], or 32 for full precision")
        .choice("/activations/range", "max",
                {"max", "percentile", "mse", "aciq_laplace", "aciq_gaussian"},
                "how the activation range is chosen on the calibration images")
        .number("/activations/percentile", 99.99, 0.0, 100.0, "percentile range: percentile of |x|")
        .choice("/activations/first_layer", "quantize", {"quantize", "fp", "8bit"},
                "the first layer's input: quantized like the rest, full precision, or 8-bit")
        .choice("/activations/last_layer", "quantize", {"quantize", "fp", "8bit"},
                "the last layer's input: quantized like the rest, full precision, or 8-bit")
        .integer("/activations/sample_size", 1 << 18, 1024, 1 << 26,
                 "input values sampled per layer for percentile/mse/aciq ranges")
        .choice("/eval/engine", "auto", {"auto", "optimized", "hooked"},
                "graph that evaluates: optimized (weights frozen in, optimize_for_inference), "
                "hooked (mpq's prepared graph), auto (optimized unless it cannot be built or "
                "disagrees on a probe batch); not part of the trial's identity")
        .choice("/eval/voc_metric", "voc07", {"voc07", "voc12"},
                "detection: the headline mAP, VOC2007 11-point or VOC2010+ area (both recorded)")
        .number("/eval/iou_threshold", 0.5, 0.0, 1.0, "detection: IoU for a true positive")
        .boolean(
            "/eval/strict_iou", false,
            "detection: IoU > threshold (py-faster-rcnn, Detectron) instead of >= (the devkit)")
        .choice("/eval/voc07_thresholds", "devkit", {"devkit", "exact", "numpy"},
                "detection: the 11 recall thresholds of VOC2007 AP: the devkit's 0:0.1:1 in "
                "MATLAB (3 * 0.1 = 0.30000000000000004), exact k/10, or numpy's arange(0, 1.1, "
                "0.1) (py-faster-rcnn; also differs at 0.6, 0.7)")
        .integer("/eval/label_offset", 1, -1000, 1000,
                 "detection: model label of the first class (torchvision: 1, 0 = background)")
        .number("/eval/fidelity_score", 0.5, 0.0, 1.0,
                "detection: FP detections at least this confident are fidelity_map's ground truth")
        .boolean("/eval/save_detections", false,
                 "detection: store every detection in the trial file (/results/detections)")
        .boolean("/bias_correction", false,
                 "empirical bias correction of every quantized layer (calibration data)")
        .integer("/seed", 0, 0, 1LL << 62, "seed of every random choice the method makes")
        .string("/label", "", "display name in tables (not part of the trial's identity)")
        .integer("/threads", 0, 0, 4096, "threads (0 = all cores of this process's share)")
        .string("/output", "", "trial HDF5 file to write (\"\" = do not write)")
        .string("/export", "",
                "also write the deployable expanded TorchScript model here (\"\" = no)")
        .string("/save_logits", "",
                "also write the quantized model's outputs per image (logits or detections, "
                "labels, paths) to this HDF5 file, as `mpq eval --save-logits` (\"\" = no)")
        .string("/export_int8", "",
                "also write the model on 8-bit integer kernels (LibTorch quantized ops) here "
                "(\"\" = no; needs activations.bits <= 8)");
    return k;
  }();
  return s;
}

json trial_identity(const TrialConfig& cfg) {
  // The identity is the resolved config minus what does not change the result; which parts
  // count is decided on the typed config (the same fields the trial runs with).
  using ptq::WeightMethod;
  const ptq::WeightConfig& w = cfg.weights;
  json id = cfg.resolved;
  id["model"].erase("path");
  id["model"].erase("cache_dir");
  if (!cfg.model.equalize.enabled)
    id["model"].erase("equalize");  // trials without it keep the ids they had before it existed
  for (const char* k : {"root", "batch_size", "max_batch_mb", "workers", "prefetch", "cache",
                        "cache_dir", "layout", "imagenet"})
    id["data"].erase(k);
  if (id.contains("eval")) id["eval"].erase("engine");  // how, not what, is evaluated
  if (cfg.task() != data::Task::kDetection) {           // detection-only settings
    id.erase("eval");
    id["data"].erase("year");
    id["model"].erase("detection_ops");
  }
  for (const char* k : {"output", "threads", "label", "export", "export_int8", "save_logits"})
    id.erase(k);
  id["calibration"].erase("cache_dir");
  // A method's settings group counts for that method, and for multipoint on its first point
  // (multipoint on GPTQ or AdaRound keeps that method's settings in its identity).
  const std::string method = ptq::weight_method_name(w.method);
  const std::string first =
      w.method == WeightMethod::kMultipoint ? ptq::first_point_name(w.first_point) : "";
  for (const char* group :
       {"multipoint", "aciq", "percentile", "ocs", "bit_alloc", "gptq", "adaround", "layer_bits"})
    if (method != group && first != group) id["weights"].erase(group);
  if (w.method != WeightMethod::kMse && w.method != WeightMethod::kMultipoint &&
      w.method != WeightMethod::kBitAlloc) {
    id["weights"].erase("search");
    id["weights"].erase("grid_candidates");
  } else if (w.search.search != quant::StepSearch::kGrid) {
    id["weights"].erase("grid_candidates");
  }
  if (w.method == WeightMethod::kMultipoint) {
    json& m = id["weights"]["multipoint"];
    const quant::Policy policy = w.allocation.policy;
    if (policy != quant::Policy::kThreshold) {
      m.erase("threshold");
      m.erase("threshold_metric");
    }
    if (!quant::policy_has_budget(policy)) {
      m.erase("budget");
      m.erase("budget_unit");
      m.erase("scope");
    }
    if (policy != quant::Policy::kUniform) m.erase("points");
    if (w.first_point == ptq::FirstPointMethod::kMse) m.erase("first_point");  // ids from before
    if (!w.gptq_feedback) m.erase("gptq_feedback");  // ids from before the option
  }
  if (id["weights"].contains("adaround") &&
      w.adaround.objective == quant::AdaroundObjective::kStatistics) {
    id["weights"]["adaround"].erase("objective");  // ids from before the data objective
    id["weights"]["adaround"].erase("batch_size");
  }
  if (!cfg.activations.enabled()) id["activations"] = {{"bits", 32}};
  if (!cfg.uses_calibration_data()) id.erase("calibration");
  id["identity_version"] = 3;
  return id;
}

std::string trial_id(const TrialConfig& cfg, const std::string& model_sha256,
                     const std::string& data_fingerprint) {
  return sha256_hex(trial_identity(cfg).dump() + "\n" + model_sha256 + "\n" + data_fingerprint);
}

std::vector<std::string> check_trial_semantics(const TrialConfig& cfg) {
  using ptq::WeightMethod;
  std::vector<std::string> problems;
  const ptq::WeightConfig& w = cfg.weights;
  if (!cfg.export_path.empty() && w.method == WeightMethod::kBitAlloc)
    problems.push_back(
        "/export: bit_alloc (physical mixed precision) has no common-operand form to export");
  if (!cfg.export_path.empty() && w.method == WeightMethod::kOcs)
    problems.push_back(
        "/export: exporting the split (OCS) network is not supported; the trial file has its split "
        "weights");
  if (!cfg.export_int8_path.empty()) {
    if (w.method == WeightMethod::kBitAlloc || w.method == WeightMethod::kOcs)
      problems.push_back(std::string("/export_int8: ") + ptq::weight_method_name(w.method) +
                         " has no integer-kernel export");
    if (cfg.task() == data::Task::kDetection)
      problems.push_back("/export_int8: detection models are not supported (classifiers only)");
    if (cfg.activations.bits > 8)
      problems.push_back(
          "/export_int8: int8 kernels take 8-bit inputs; set activations.bits <= 8 (e.g. --set "
          "activations.bits=8) so the simulated trial quantizes them the same way");
  }
  if (w.method == WeightMethod::kMultipoint && w.statistics == ptq::Statistics::kQuantizedPrefix &&
      quant::policy_has_budget(w.allocation.policy) && w.allocation.scope == quant::Scope::kNetwork)
    problems.push_back(
        "/calibration/statistics: \"quantized_prefix\" measures each layer after the earlier "
        "ones are final, so the allocation must be per layer: set /weights/multipoint/scope to "
        "\"layer\" or use policy \"threshold\" or \"uniform\"");
  if (w.gptq_feedback &&
      (w.method != WeightMethod::kMultipoint || w.first_point != ptq::FirstPointMethod::kGptq))
    problems.push_back(
        "/weights/multipoint/gptq_feedback: needs method \"multipoint\" with first_point "
        "\"gptq\"");
  if (ptq::uses_adaround_data(w) && w.statistics == ptq::Statistics::kQuantizedPrefix)
    problems.push_back(
        "/weights/adaround/objective: \"data\" already reconstructs on the inputs of the "
        "quantized earlier layers; set /calibration/statistics to \"fp\"");
  const int abits = cfg.activations.bits;
  if ((abits < 2 || abits > 8) && abits != 32)
    problems.push_back("/activations/bits: must be in [2, 8], or 32 for full precision, got " +
                       std::to_string(abits));
  const double avg = w.bit_alloc_average;
  if (w.method == WeightMethod::kBitAlloc && avg != 0 && avg < 2)
    problems.push_back("/weights/bit_alloc/average_bits: must be 0 (= /weights/bits) or in [2, 8]");
  if (w.method == WeightMethod::kMultipoint && w.allocation.policy == quant::Policy::kUniform &&
      w.allocation.uniform_points > w.allocation.max_points)
    problems.push_back(
        "/weights/multipoint/points: " + std::to_string(w.allocation.uniform_points) +
        " exceeds /weights/multipoint/max_points " + std::to_string(w.allocation.max_points));
  return problems;
}

std::vector<std::string> complete_trial_config(json& r) {
  json& d = r["data"];
  const std::string name = d["name"];
  if (d["eval_split"] == "") d["eval_split"] = data::default_eval_split(name);
  if (r["calibration"]["split"] == "")
    r["calibration"]["split"] = data::default_calibration_split(name);
  if (d["batch_size"] == 0) d["batch_size"] = name == "fashion-mnist" ? 500 : 64;
  // A pretrained network brings its own preprocessing: "auto" is its preset, whatever the data.
  const std::string model = r["model"]["path"];
  const std::string preset = train::is_pretrained_ref(model) ? train::pretrained_model(model).preset
                                                             : data::default_preset(name);
  return data::resolve_preprocess(d["preprocess"], preset);
}

data::LoaderOptions DataConfig::loader(int threads) const {
  data::LoaderOptions o;
  o.workers = workers > 0 ? workers : std::max(1, threads);
  o.prefetch = prefetch;
  o.skip_bad = skip_bad_images;
  return o;
}

bool TrialConfig::uses_calibration_data() const {
  return ptq::uses_calibration(weights) || activations.enabled() || bias_correction;
}

data::Task TrialConfig::task() const {
  return data::dataset_task(data.spec.name);
}

namespace {

/// /model: the model and its preparation.
void parse_model(const json& r, TrialConfig& t) {
  const json& m = r["model"];
  t.model.path = m["path"];
  t.model.cache_dir = m["cache_dir"];
  t.model.fold_bn = m["fold_bn"];
  t.model.input_shape = m["input_shape"].get<std::vector<int64_t>>();
  t.model.detection_ops = m["detection_ops"];
  const json eq = m.value("equalize", json::object());  // plans written before it existed
  t.model.equalize.enabled = eq.value("enabled", false);
  t.model.equalize.relu6 = model::parse_relu6_mode(eq.value("relu6", "clip"));
  t.model.equalize.absorb_bias = eq.value("absorb_bias", true);
  t.model.equalize.max_passes = eq.value("max_passes", 100);
}

/// /data: the dataset, its splits and the loader.
void parse_data(const json& r, TrialConfig& t) {
  const json& d = r["data"];
  t.data.spec.name = d["name"];
  t.data.spec.root = d["root"];
  t.data.spec.preprocess = data::preprocess_from_json(d["preprocess"]);
  t.data.spec.imagenet.layout = data::parse_imagenet_layout(d["layout"]);
  t.data.spec.imagenet.ground_truth = d["imagenet"]["ground_truth"];
  t.data.spec.imagenet.meta = d["imagenet"]["meta"];
  t.data.spec.content_fingerprint = d["fingerprint"] == "content";
  t.data.spec.year = d["year"];
  t.data.eval_split = d["eval_split"];
  t.data.calibration_split = r["calibration"]["split"];
  t.data.eval_limit = d["eval_limit"];
  t.data.eval_subset = d["eval_subset"];
  t.data.eval_subset_seed = d["eval_subset_seed"];
  t.data.batch_size = d["batch_size"];
  // Plans written before the key existed lack it (it is not part of the identity).
  if (d.contains("max_batch_mb")) t.data.max_batch_mb = d["max_batch_mb"];
  t.data.workers = d["workers"];
  t.data.prefetch = d["prefetch"];
  t.data.cache = d["cache"];
  t.data.cache_dir = d["cache_dir"];
  t.data.skip_bad_images = d["on_bad_image"] == "skip";
}

/// /calibration: the calibration sample.
void parse_calibration(const json& r, TrialConfig& t) {
  const json& c = r["calibration"];
  t.calibration.size = c["size"];
  t.calibration.seed = c["seed"];
  t.calibration.batch_size = c["batch_size"];
  t.calibration.max_stats_mb = c["max_stats_mb"];
  t.calibration.cache_dir = c["cache_dir"];
}

/// /weights (and /calibration/statistics, /seed): the weight method and its settings.
void parse_weights(const json& r, TrialConfig& t) {
  const json& c = r["calibration"];
  const json& j = r["weights"];
  ptq::WeightConfig& w = t.weights;
  w.method = ptq::parse_weight_method(j["method"]);
  w.bits = j["bits"];
  w.granularity = j["granularity"] == "per_layer" ? quant::Granularity::kPerLayer
                                                  : quant::Granularity::kPerChannel;
  w.first_layer = ptq::parse_layer_rule(j["first_layer"]);
  w.last_layer = ptq::parse_layer_rule(j["last_layer"]);
  w.search.search = j["search"] == "grid" ? quant::StepSearch::kGrid : quant::StepSearch::kExact;
  w.search.grid_candidates = j["grid_candidates"];
  const json& mp = j["multipoint"];
  w.allocation.policy = quant::parse_policy(mp["policy"]);
  w.allocation.max_points = mp["max_points"];
  w.allocation.uniform_points = mp["points"];
  w.allocation.threshold = mp["threshold"];
  w.allocation.threshold_on_weights = mp["threshold_metric"] == "weight";
  w.allocation.budget = mp["budget"];
  w.allocation.unit =
      mp["budget_unit"] == "macs" ? quant::BudgetUnit::kMacs : quant::BudgetUnit::kChannels;
  w.allocation.scope = mp["scope"] == "layer" ? quant::Scope::kLayer : quant::Scope::kNetwork;
  w.allocation.seed = r["seed"];
  if (w.method == ptq::WeightMethod::kAciq)
    w.range.method = j["aciq"]["prior"] == "gaussian" ? quant::RangeMethod::kAciqGaussian
                                                      : quant::RangeMethod::kAciqLaplace;
  else if (w.method == ptq::WeightMethod::kPercentile)
    w.range = {quant::RangeMethod::kPercentile, j["percentile"]["p"].get<double>()};
  w.ocs_expand_ratio = j["ocs"]["expand_ratio"];
  w.ocs_range.method =
      j["ocs"]["range"] == "mse" ? quant::RangeMethod::kMse : quant::RangeMethod::kMax;
  w.bit_alloc_average = j["bit_alloc"]["average_bits"];
  w.bit_alloc_by_output_error = j["bit_alloc"]["metric"] == "output";
  w.layer_bits_budget = j["layer_bits"]["budget"];
  w.layer_bits_max = j["layer_bits"]["max_bits"];
  const std::string refit = mp["refit"];
  w.refit = refit == "weight"   ? quant::Refit::kWeight
            : refit == "output" ? quant::Refit::kOutput
                                : quant::Refit::kNone;
  w.weighted = mp["weighted"];
  w.first_point = ptq::parse_first_point(mp["first_point"]);
  w.gptq_feedback = mp["gptq_feedback"];
  const json& ar = j["adaround"];
  w.adaround.iterations = ar["iterations"];
  w.adaround.lambda = ar["lambda"];
  w.adaround.beta_start = ar["beta_start"];
  w.adaround.beta_end = ar["beta_end"];
  w.adaround.warmup = ar["warmup"];
  w.adaround.lr = ar["lr"];
  w.adaround.grid = ar["grid"] == "max" ? quant::RangeMethod::kMax : quant::RangeMethod::kMse;
  w.adaround.objective = ar["objective"] == "data" ? quant::AdaroundObjective::kData
                                                   : quant::AdaroundObjective::kStatistics;
  w.adaround.batch_size = ar["batch_size"];
  w.adaround.seed = r["seed"];
  const json& gq = j["gptq"];
  w.gptq.grid = gq["grid"] == "mse" ? quant::RangeMethod::kMse : quant::RangeMethod::kMax;
  w.gptq.damp = gq["damp"];
  w.gptq.act_order = gq["act_order"];
  w.gptq.block = gq["block"];
  w.statistics = c["statistics"] == "quantized_prefix" ? ptq::Statistics::kQuantizedPrefix
                                                       : ptq::Statistics::kFp;
}

/// /activations: the activation quantizers.
void parse_activations(const json& r, TrialConfig& t) {
  const json& a = r["activations"];
  t.activations.bits = a["bits"];
  t.activations.range = ptq::parse_act_range(a["range"]);
  t.activations.percentile = a["percentile"];
  t.activations.first_layer = ptq::parse_layer_rule(a["first_layer"]);
  t.activations.last_layer = ptq::parse_layer_rule(a["last_layer"]);
  t.activations.sample_size = a["sample_size"];
}

/// /eval: the detection evaluation and the engine.
void parse_eval(const json& r, TrialConfig& t) {
  const json& e = r["eval"];
  t.detection.headline = e["voc_metric"] == "voc12" ? eval::VocMetric::k12 : eval::VocMetric::k07;
  t.detection.iou_threshold = e["iou_threshold"];
  t.detection.strict_iou = e["strict_iou"];
  t.detection.voc07_thresholds = eval::parse_voc07_thresholds(e["voc07_thresholds"]);
  t.detection.label_offset = e["label_offset"];
  t.detection.fidelity_score = e["fidelity_score"];
  t.detection.save_detections = e["save_detections"];
  // Plans written before the key existed lack it (it is not part of the identity).
  t.eval_engine = model::parse_eval_engine(e.value("engine", "auto"));
}

}  // namespace

TrialConfig parse_trial_config(const json& r) {
  TrialConfig t;
  t.resolved = r;
  parse_model(r, t);
  parse_data(r, t);
  parse_calibration(r, t);
  parse_weights(r, t);
  parse_activations(r, t);
  parse_eval(r, t);
  t.bias_correction = r["bias_correction"];
  t.seed = r["seed"];
  t.label = r["label"];
  t.threads = r["threads"];
  t.output = r["output"];
  t.export_path = r["export"];
  t.export_int8_path = r["export_int8"];
  // Plans written before the key existed lack it (it is not part of the identity).
  t.save_logits_path = r.value("save_logits", "");
  return t;
}

json resolve_trial_config(const json& user, const std::string& source) {
  json resolved = trial_schema().resolve(user, source);
  auto problems = complete_trial_config(resolved);
  if (problems.empty()) problems = check_trial_semantics(parse_trial_config(resolved));
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size(); ++i)
      msg += (i ? "\nmpq: " : "") + source + ": " + problems[i];
    throw ConfigError(msg);
  }
  return resolved;
}

}  // namespace mpq::sweep
