// The metrics mpq records and the tasks they belong to: one table that says what each metric
// means, how it is shown, and which way is better, and per task its metrics and its headline.
// Aggregation, reports, the trial summary and the FP check ask here instead of guessing the task
// from metric names (docs/report.md, docs/detection.md).
//
//   metric            shown as                          stored as   better
//   top1, top5        top-1 / top-5 accuracy (%)        fraction    higher
//   agreement         agreement with FP (%)             fraction    higher
//   agreement_top5    top-5 agreement with FP (%)       fraction    higher
//   kl                KL(FP || quantized), nats         value       lower
//   sqnr_db           output SQNR (dB)                  value       higher
//   map_voc07/12      mAP@0.5 VOC07 11-point / VOC12    fraction    higher
//   fidelity_map      fidelity mAP (%)                  fraction    higher
//   fp_*              the FP model's value              as above    neither (a reference)
//   *error*           relative errors                   value       lower
//   anything else     as recorded (overheads, counts, times)        neither
//
// Tasks and headlines: classification top1; detection map_voc07 or map_voc12; fidelity
// (unlabelled images) agreement.
// A trial's task and headline come from its manifest ("task"; detection also
// "detection_headline", set by eval.voc_metric), so a VOC12 sweep leads with map_voc12 in every
// table, figure and summary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"

namespace mpq::eval {

/// +1: higher is better (accuracies, mAP); -1: lower is better (KL, errors); 0: neither
/// (references, overheads, counts, times).
int metric_direction(const std::string& metric);

/// True for metrics stored as fractions and shown in percent (top1, map_voc07, fp_top1, ...).
bool is_percent_metric(const std::string& metric);

/// Long label for axes and captions: "top-1 accuracy (%)", "mAP@0.5, VOC12 area (%)"; unknown
/// metrics as their name (with " (%)" when percent).
std::string metric_display(const std::string& metric);

/// Decimals of a metric in tables (after the x100 of percent metrics): 4 for KL, 2 otherwise.
int metric_digits(const std::string& metric);

/// The other VOC mAP of a detection headline: map_voc07 <-> map_voc12.
std::string other_voc_headline(const std::string& headline);

/// What a task records and leads with.
struct TaskMetrics {
  data::Task task = data::Task::kClassification;
  std::string headline;  ///< "top1"; detection "map_voc07" or "map_voc12" (eval.voc_metric);
                         ///< fidelity "agreement"
  /// The default columns of summary tables, headline first.
  std::vector<std::string> summary() const;
  /// The FP model's value of the headline ("fp_top1", "fp_map_voc12"); "" for fidelity (the
  /// FP model is the reference itself).
  std::string fp_headline() const { return task == data::Task::kFidelity ? "" : "fp_" + headline; }
};

/// The task's metrics with its default headline.
TaskMetrics task_metrics(data::Task task);

/// The task and headline a trial file's manifest records ("task", "detection_headline"; no "task":
/// a file older than detection, classification). Throws InputError naming the field for an
/// unknown task or headline.
TaskMetrics trial_task_metrics(const nlohmann::json& manifest);

/// The task and headline of a set of trials (`what`: e.g. the sweep directory, for messages):
/// their common task and headline; the task's default headline when they disagree (a sweep over
/// eval.voc_metric); classification when there are none. InputError if they mix tasks.
TaskMetrics common_task_metrics(const std::vector<TaskMetrics>& trials, const std::string& what);

/// One line for a finished trial, leading with the headline: "top-1 91.20% (FP 92.66%), ..." or
/// "mAP VOC12 80.1% (FP ...), VOC07 ...".
std::string summarize_metrics(const TaskMetrics& task, const nlohmann::json& metrics);

}  // namespace mpq::eval
