#include "mpq/eval/metrics.h"

#include <cstdio>

#include "mpq/util/error.h"

namespace mpq::eval {
using nlohmann::json;

namespace {

struct MetricRow {
  const char* name;
  const char* display;
  bool percent;
  int direction;
};

// Every metric with a meaning beyond its name; the header says how the rest are treated.
constexpr MetricRow kMetrics[] = {
    {"top1", "top-1 accuracy (%)", true, +1},
    {"top5", "top-5 accuracy (%)", true, +1},
    {"agreement", "agreement with FP (%)", true, +1},
    {"agreement_top5", "top-5 agreement with FP (%)", true, +1},
    {"kl", "KL(FP || quantized)", false, -1},
    {"sqnr_db", "output SQNR (dB)", false, +1},
    {"map_voc07", "mAP@0.5, VOC07 11-point (%)", true, +1},
    {"map_voc12", "mAP@0.5, VOC12 area (%)", true, +1},
    {"fidelity_map", "fidelity mAP (%)", true, +1},
    {"fp_top1", "FP top-1 accuracy (%)", true, 0},
    {"fp_top5", "FP top-5 accuracy (%)", true, 0},
    {"fp_map_voc07", "FP mAP@0.5, VOC07 11-point (%)", true, 0},
    {"fp_map_voc12", "FP mAP@0.5, VOC12 area (%)", true, 0},
    {"weight_coverage_pct", "weights quantized (%)", false, 0},
};

const MetricRow* find(const std::string& m) {
  for (const auto& r : kMetrics)
    if (m == r.name) return &r;
  return nullptr;
}

}  // namespace

int metric_direction(const std::string& m) {
  if (const MetricRow* r = find(m)) return r->direction;
  return m.find("error") != std::string::npos ? -1 : 0;
}

bool is_percent_metric(const std::string& m) {
  const MetricRow* r = find(m);
  return r != nullptr && r->percent;
}

std::string metric_display(const std::string& m) {
  if (const MetricRow* r = find(m)) return r->display;
  return m;
}

std::string other_voc_headline(const std::string& headline) {
  return headline == "map_voc12" ? "map_voc07" : "map_voc12";
}

int metric_digits(const std::string& m) {
  return m == "kl" ? 4 : m == "sqnr_db" ? 1 : 2;
}

std::vector<std::string> TaskMetrics::summary() const {
  switch (task) {
    case data::Task::kDetection:
      return {headline, other_voc_headline(headline), "fidelity_map", "extra_channels_pct",
              "weight_coverage_pct"};
    case data::Task::kFidelity:
      return {headline,  "agreement_top5",     "kl",
              "sqnr_db", "extra_channels_pct", "weight_coverage_pct"};
    case data::Task::kClassification:
      break;
  }
  return {headline, "agreement", "kl", "extra_channels_pct", "weight_coverage_pct"};
}

TaskMetrics task_metrics(data::Task task) {
  switch (task) {
    case data::Task::kDetection:
      return {task, "map_voc07"};
    case data::Task::kFidelity:
      return {task, "agreement"};
    case data::Task::kClassification:
      break;
  }
  return {task, "top1"};
}

TaskMetrics trial_task_metrics(const json& manifest) {
  // Trial files from before detection existed have no "task": they are all classification.
  const std::string task =
      manifest.value("task", std::string(data::task_name(data::Task::kClassification)));
  if (task == data::task_name(data::Task::kClassification))
    return task_metrics(data::Task::kClassification);
  if (task == data::task_name(data::Task::kFidelity)) return task_metrics(data::Task::kFidelity);
  if (task != data::task_name(data::Task::kDetection))
    throw InputError("manifest/task: expected classification, detection or fidelity, got '" + task +
                     "'");
  TaskMetrics t = task_metrics(data::Task::kDetection);
  const std::string h = manifest.value("detection_headline", t.headline);
  if (h != "map_voc07" && h != "map_voc12")
    throw InputError("manifest/detection_headline: expected map_voc07 or map_voc12, got '" + h +
                     "'");
  t.headline = h;
  return t;
}

TaskMetrics common_task_metrics(const std::vector<TaskMetrics>& trials, const std::string& what) {
  if (trials.empty()) return task_metrics(data::Task::kClassification);
  TaskMetrics out = trials.front();
  for (const auto& t : trials) {
    if (t.task != out.task)
      throw InputError(what + ": mixes " + data::task_name(out.task) + " and " +
                       data::task_name(t.task) + " trials; aggregate them as separate sweeps");
    if (t.headline != out.headline) out.headline = task_metrics(t.task).headline;
  }
  return out;
}

namespace {
std::string summarize_task(const TaskMetrics& task, const json& m);
}

std::string summarize_metrics(const TaskMetrics& task, const json& m) {
  std::string line = summarize_task(task, m);
  if (m.contains("weight_coverage_pct")) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", weights quantized %.1f%%",
                  m.value("weight_coverage_pct", 0.0));
    line += buf;
  }
  return line;
}

namespace {
std::string summarize_task(const TaskMetrics& task, const json& m) {
  char buf[256];
  auto pct = [&](const char* k) { return 100 * m.value(k, 0.0); };
  if (task.task == data::Task::kDetection) {
    const bool v12 = task.headline == "map_voc12";
    const char* a = v12 ? "map_voc12" : "map_voc07";
    const char* b = v12 ? "map_voc07" : "map_voc12";
    std::snprintf(buf, sizeof buf,
                  "mAP %s %.2f%% (FP %.2f%%), %s %.2f%% (FP %.2f%%), fidelity %.2f%%, "
                  "extra MACs %.1f%%",
                  v12 ? "VOC12" : "VOC07", pct(a), pct(v12 ? "fp_map_voc12" : "fp_map_voc07"),
                  v12 ? "VOC07" : "VOC12", pct(b), pct(v12 ? "fp_map_voc07" : "fp_map_voc12"),
                  pct("fidelity_map"), m.value("extra_macs_pct", 0.0));
    return buf;
  }
  if (task.task == data::Task::kFidelity) {
    std::snprintf(buf, sizeof buf,
                  "agreement %.2f%%, top-5 agreement %.2f%%, KL %.4f, SQNR %.1f dB, extra MACs "
                  "%.1f%%",
                  pct("agreement"), pct("agreement_top5"), m.value("kl", 0.0),
                  m.value("sqnr_db", 0.0), m.value("extra_macs_pct", 0.0));
    return buf;
  }
  std::snprintf(
      buf, sizeof buf,
      "top-1 %.2f%% (FP %.2f%%), top-5 %.2f%%, agreement %.2f%%, KL %.4f, extra MACs %.1f%%",
      pct("top1"), pct("fp_top1"), pct("top5"), pct("agreement"), m.value("kl", 0.0),
      m.value("extra_macs_pct", 0.0));
  return buf;
}
}  // namespace

}  // namespace mpq::eval
