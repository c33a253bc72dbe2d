#include "mpq/sweep/fp_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mpq/data/factory.h"
#include "mpq/eval/metrics.h"
#include "mpq/model/network.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::sweep {
using nlohmann::json;

std::optional<FpReference> published_reference(const json& meta, const std::string& dataset,
                                               const std::string& year,
                                               const std::string& headline) {
  if (!meta.is_object() || !meta.contains("published") || !meta["published"].is_object())
    return std::nullopt;
  const json& pub = meta["published"];
  auto number = [](const json& j, const char* k) -> std::optional<double> {
    if (j.is_object() && j.contains(k) && j[k].is_number()) return j[k].get<double>();
    return std::nullopt;
  };
  const data::DatasetKind kind = data::dataset_kind(dataset);
  if ((kind == data::DatasetKind::kImagenet || kind == data::DatasetKind::kImagenetSamples) &&
      pub.contains("ImageNet-1K"))
    if (auto v = number(pub["ImageNet-1K"], "acc@1"))
      return FpReference{"top1", *v, "ImageNet-1K acc@1"};
  if (kind == data::DatasetKind::kVoc)
    for (const auto& [k, v] : pub.items())
      if (k.rfind("VOC" + year, 0) == 0) {
        const std::string other = eval::other_voc_headline(headline);
        for (const std::string& metric : {headline, other})
          if (auto m = number(v, metric.c_str())) return FpReference{metric, *m, k + " " + metric};
      }
  return std::nullopt;
}

std::pair<double, double> wilson_interval(double p, int64_t n) {
  if (n <= 0) return {NAN, NAN};
  const double z = 1.959963984540054, nn = static_cast<double>(n);
  const double denom = 1 + z * z / nn;
  const double centre = (p + z * z / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom;
  return {100 * (centre - half), 100 * (centre + half)};
}

json FpCheck::to_json() const {
  json j = {{"model", model},           {"dataset", dataset},
            {"split", split},           {"metric", metric},
            {"source", source},         {"images", n},
            {"full_split", full_split}, {"published", published},
            {"measured", measured},     {"difference", measured - published},
            {"tolerance", tolerance},   {"outcome", outcome_name(outcome)},
            {"message", message}};
  if (!std::isnan(ci_low)) j["ci95"] = {ci_low, ci_high};
  if (std::isnan(tolerance)) j["tolerance"] = nullptr;  // a sample is judged by its binomial tail
  return j;
}

const char* FpCheck::outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kFail:
      return "fail";
    case Outcome::kSubset:
      break;
  }
  return "subset";
}

double binomial_cdf(int64_t k, int64_t n, double p) {
  if (k < 0) return 0;
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  double total = 0;
  for (int64_t i = 0; i <= k; ++i) {
    const double log_term =
        std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
        std::lgamma(static_cast<double>(n - i) + 1) + static_cast<double>(i) * std::log(p) +
        static_cast<double>(n - i) * std::log1p(-p);
    total += std::exp(log_term);
  }
  return std::min(1.0, total);
}

FpCheck judge_sample(const FpReference& ref, double measured, int64_t n) {
  FpCheck c;
  c.metric = ref.metric;
  c.source = ref.source;
  c.published = ref.value;
  c.measured = measured;
  c.n = n;
  c.full_split = false;
  c.tolerance = NAN;
  std::tie(c.ci_low, c.ci_high) = wilson_interval(measured / 100, n);
  const auto k = static_cast<int64_t>(std::llround(measured * static_cast<double>(n) / 100));
  const double tail = binomial_cdf(k, n, ref.value / 100);
  c.outcome = tail < kSampleAlpha ? FpCheck::Outcome::kFail : FpCheck::Outcome::kPass;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "FP %s %lld of %lld labelled sample images (%.1f%%) vs published %.3f%% (%s): "
                "P(X <= %lld) = %.2g for a model of that accuracy, %s %.0e",
                ref.metric.c_str(), static_cast<long long>(k), static_cast<long long>(n), measured,
                ref.value, ref.source.c_str(), static_cast<long long>(k), tail,
                tail < kSampleAlpha ? "implausibly low, below" : "plausible, above", kSampleAlpha);
  c.message = buf;
  return c;
}

FpCheck judge_fp(const FpReference& ref, double measured, int64_t n, bool full, double tol) {
  FpCheck c;
  c.metric = ref.metric;
  c.source = ref.source;
  c.published = ref.value;
  c.measured = measured;
  c.n = n;
  c.full_split = full;
  c.tolerance = tol;
  if (ref.metric == "top1") std::tie(c.ci_low, c.ci_high) = wilson_interval(measured / 100, n);
  char buf[512];
  const double diff = measured - ref.value;
  if (full) {
    c.outcome = std::fabs(diff) <= tol ? FpCheck::Outcome::kPass : FpCheck::Outcome::kFail;
    std::snprintf(buf, sizeof buf,
                  "FP %s %.3f%% on the full split (%lld images) vs published %.3f%% (%s): %+.3f "
                  "points, tolerance %.2f",
                  ref.metric.c_str(), measured, static_cast<long long>(n), ref.value,
                  ref.source.c_str(), diff, tol);
  } else {
    c.outcome = FpCheck::Outcome::kSubset;
    if (!std::isnan(c.ci_low))
      std::snprintf(buf, sizeof buf,
                    "FP %s %.2f%% on a subset of %lld images (95%% CI %.2f-%.2f) vs published "
                    "%.3f%% (%s): %+.2f points, %s the interval",
                    ref.metric.c_str(), measured, static_cast<long long>(n), c.ci_low, c.ci_high,
                    ref.value, ref.source.c_str(), diff,
                    ref.value >= c.ci_low && ref.value <= c.ci_high ? "published value within"
                                                                    : "published value OUTSIDE");
    else
      std::snprintf(buf, sizeof buf,
                    "FP %s %.2f%% on a subset of %lld images vs published %.3f%% (%s): %+.2f "
                    "points (no interval for mAP; not checked)",
                    ref.metric.c_str(), measured, static_cast<long long>(n), ref.value,
                    ref.source.c_str(), diff);
  }
  c.message = buf;
  return c;
}

std::vector<FpCheck> run_fp_checks(const SweepSpec& spec,
                                   const std::vector<store::PlannedTrial>& plan,
                                   const store::SweepDir& dir, TrialContext& ctx) {
  std::vector<FpCheck> out;
  std::vector<std::string> seen;
  for (const auto& p : plan) {
    if (spec.run.fp_check == FpCheckMode::kOff) break;
    const json key = {{"model", p.config["model"]}, {"data", p.config["data"]}};
    if (std::find(seen.begin(), seen.end(), key.dump()) != seen.end()) continue;
    seen.push_back(key.dump());
    const TrialConfig cfg = parse_trial_config(p.config);
    const std::string path = resolve_model_path(cfg);
    json meta = json::object();
    try {
      const std::string text = model::archive_extra_meta(path);
      if (text.empty()) continue;
      meta = json::parse(text);
    } catch (const std::exception&) {
      continue;  // no (readable) metadata: nothing to check against
    }
    // Unlabelled data: the model is checked on the labelled samples, with the same preprocessing.
    json checked = p.config;
    const bool unlabelled = cfg.task() == data::Task::kFidelity;
    if (unlabelled) {
      checked["data"]["name"] = "imagenet_samples";
      checked["data"]["root"] = spec.run.fp_check_samples;
      checked["data"]["eval_split"] = "";
      checked["data"]["eval_limit"] = 0;
      checked["data"]["eval_subset"] = 0;
    }
    const std::string dataset = checked["data"]["name"];
    auto ref = published_reference(meta, dataset, cfg.data.spec.year,
                                   eval::voc_metric_name(cfg.detection.headline));
    if (!ref) continue;
    json measured = evaluate_fp(checked, ctx, "");
    if (!measured.contains(ref->metric)) continue;
    const int64_t n = measured.value("n_eval", int64_t{0});
    const bool full = cfg.data.eval_limit == 0 && cfg.data.eval_subset == 0;
    const double value = 100 * measured[ref->metric].get<double>();
    FpCheck c = data::dataset_kind(dataset) == data::DatasetKind::kImagenetSamples
                    ? judge_sample(*ref, value, n)
                    : judge_fp(*ref, value, n, full, spec.run.fp_check_tolerance);
    c.model = cfg.model.path;
    c.dataset = dataset;
    c.split = checked["data"]["eval_split"];
    info(std::string("FP check ") + FpCheck::outcome_name(c.outcome) + ": " + c.model + ": " +
         c.message);
    out.push_back(c);
  }
  json all = json::array();
  for (const auto& c : out) all.push_back(c.to_json());
  store::write_file_atomic(dir.fp_check_path(), all.dump(2) + "\n");
  for (const auto& c : out)
    if (c.outcome == FpCheck::Outcome::kFail && spec.run.fp_check == FpCheckMode::kError)
      throw InputError(
          c.model + ": FP reference check failed: " + c.message +
          ". Likely causes: a preprocessing preset that does not match the weights "
          "(data.preprocess.preset), a label layout or mapping that differs from torchvision's "
          "(data.layout), or other weights than the archive's metadata says; fix the setup, or "
          "pass --ignore-fp-check (run.fp_check = \"warn\") to proceed anyway");
  return out;
}

}  // namespace mpq::sweep
