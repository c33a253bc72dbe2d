// FP sanity check before a sweep runs (docs/reproduce.md): most PTQ reproduction gaps come from a
// wrong preprocessing preset, label mapping or checkpoint, not from the method. When an archive
// records a published accuracy for the dataset being evaluated — scripts/export_torchvision.py
// writes torchvision's model-card numbers ("published": {"ImageNet-1K": {"acc@1": 69.758}}); a
// detector may carry {"VOC2007-test": {"map_voc07": 68.1}} (--published) — the sweep's
// preparation evaluates the FP model once on the sweep's evaluation set and compares:
//   - full evaluation split: |measured - published| must be <= the tolerance (default 0.1
//     points), otherwise preparation fails with the likely causes (run.fp_check = "warn" or
//     --ignore-fp-check proceed anyway);
//   - a subset (data.eval_limit / eval_subset): the difference is reported with a 95% Wilson
//     score interval of the measured accuracy (binomial; for mAP no interval), never fails;
//   - a labelled sample (data.name = imagenet_samples: foolbox's 20 ImageNet images): fails when
//     the count of correct images is implausibly low for the published accuracy, the one-sided
//     binomial probability P(X <= k | n, published) below kSampleAlpha = 1e-3 (20 images of a
//     75.1% model: 8 or fewer correct fail; a wrong preprocessing or label order gives ~0);
//   - unlabelled data (fidelity datasets, e.g. photos): the model is checked on the labelled
//     sample instead (run.fp_check_samples, default results/data/imagenet_samples), with the
//     sweep's preprocessing, judged as above.
// Results go to <sweep>/fp_check.json and into the report.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/sweep_config.h"

namespace mpq::sweep {

class TrialContext;

struct FpReference {
  std::string metric;  ///< top1 | map_voc07 | map_voc12 (the trial metric it compares with)
  double value = 0;    ///< percent
  std::string source;  ///< e.g. "ImageNet-1K acc@1"
};

/// The reference an archive's metadata (mpq_meta.json) holds for `dataset` ("imagenet", "voc"
/// with `year`), if any. A detector's published mAP is taken in the trial's headline metric
/// (`headline`: map_voc07 or map_voc12, eval.voc_metric) when the metadata has it, else in the
/// other one.
std::optional<FpReference> published_reference(const nlohmann::json& meta,
                                               const std::string& dataset, const std::string& year,
                                               const std::string& headline = "map_voc07");

struct FpCheck {
  /// Pass or fail on the full split (within the tolerance) or a labelled sample (binomial); on a
  /// subset only reported.
  enum class Outcome { kPass, kFail, kSubset };
  static const char* outcome_name(Outcome o);  ///< "pass" | "fail" | "subset" (fp_check.json)
  std::string model, dataset, split, metric, source;
  int64_t n = 0;
  bool full_split = false;
  double published = 0, measured = 0;  ///< percent
  double ci_low = NAN, ci_high = NAN;  ///< 95% Wilson interval of the measured accuracy
  double tolerance = 0.1;              ///< points
  Outcome outcome = Outcome::kSubset;
  std::string message;  ///< one line for humans
  nlohmann::json to_json() const;
};

/// Judges one measurement (pure; unit-tested).
FpCheck judge_fp(const FpReference& ref, double measured_percent, int64_t n, bool full_split,
                 double tolerance);

/// One-sided binomial probability below which a labelled sample fails.
inline constexpr double kSampleAlpha = 1e-3;

/// Judges a labelled sample (pure; unit-tested): kFail when P(X <= round(measured * n / 100) |
/// n, published / 100) < kSampleAlpha, else kPass.
FpCheck judge_sample(const FpReference& ref, double measured_percent, int64_t n);

/// P(X <= k) for X ~ Binomial(n, p), summed in log space (float64).
double binomial_cdf(int64_t k, int64_t n, double p);

/// 95% Wilson score interval (percent) of k/n successes.
std::pair<double, double> wilson_interval(double p, int64_t n);

/// Runs the check for every distinct (model, evaluation data) of the plan whose archive has a
/// reference, writes <dir>/fp_check.json (all checks, also an empty list) and prints one line per
/// check. Throws InputError naming the model, the numbers and the likely causes if a full-split
/// check fails and spec.run.fp_check is FpCheckMode::kError.
std::vector<FpCheck> run_fp_checks(const SweepSpec& spec,
                                   const std::vector<store::PlannedTrial>& plan,
                                   const store::SweepDir& dir, TrialContext& ctx);

}  // namespace mpq::sweep
