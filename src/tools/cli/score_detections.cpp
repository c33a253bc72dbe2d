// mpq score-detections: VOC mAP of saved detections; mpq schema: every config key.
#include <cstdio>

#include "mpq/data/voc.h"
#include "mpq/report/table.h"
#include "mpq/store/data_export.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/train/train.h"
#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {
using nlohmann::json;

class ScoreDetections : public Verb {
 public:
  explicit ScoreDetections(CLI::App& app)
      : Verb(app.add_subcommand(
            "score-detections",
            "VOC mAP of saved detections (a trial file's, or any [M, 7] table)")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq score-detections results/voc/trials/<id>.h5 --iou 0.7\n"
        "  mpq score-detections dets.h5 --set data.name=voc --set data.root=/data/VOCdevkit\n"
        "A trial file run with eval.save_detections = true carries its detections and config; "
        "a\n"
        "plain HDF5 file needs /detections [M, 7] (image position, class, score, x1, y1, x2, y2 "
        "in\n"
        "VOC 1-based coordinates) and the dataset from --config/--set.");
    add_config_args(c, cfg_);
    c->add_option("file", file_, "trial file or detections table (HDF5)")->required();
    c->add_option("--iou", iou_, "IoU threshold")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    c->add_flag("--strict", strict_, "IoU > threshold (py-faster-rcnn) instead of >= (the devkit)");
    c->add_option("--voc07-thresholds", thresholds_,
                  "VOC2007 recall thresholds: devkit (MATLAB's 0:0.1:1), exact (k/10) or numpy "
                  "(arange(0, 1.1, 0.1))")
        ->capture_default_str()
        ->check(CLI::IsMember({"devkit", "exact", "numpy"}));
    c->add_flag("--json", json_, "print the result as JSON (full precision)");
  }

  int run(int*, char***) override {
    json trial_cfg;
    auto table = store::read_detections(file_, &trial_cfg);
    json cfg = trial_cfg.is_null() ? sweep::resolve_trial_config(user_config(cfg_, json::object()),
                                                                 source_name(cfg_))
                                   : trial_cfg;
    sweep::TrialContext ctx;
    auto r = sweep::score_detections(cfg, ctx, table,
                                     {iou_, strict_, eval::parse_voc07_thresholds(thresholds_)});
    const auto& names = data::voc_classes();
    if (json_) {
      std::printf("%s\n", json{{"map_voc07", r.map07},
                               {"map_voc12", r.map12},
                               {"ap_voc07", r.ap07},
                               {"ap_voc12", r.ap12},
                               {"positives", r.positives}}
                              .dump()
                              .c_str());
      return kExitOk;
    }
    std::printf("map_voc07\t%.6f\nmap_voc12\t%.6f\n\n", r.map07, r.map12);
    report::Table t({"class", "AP VOC07", "AP VOC12", "positives", "detections"});
    for (size_t c = 0; c < r.ap07.size(); ++c)
      t.add_row({c < names.size() ? names[c] : std::to_string(c), report::format("%.4f", r.ap07[c]),
                 report::format("%.4f", r.ap12[c]), std::to_string(r.positives[c]),
                 std::to_string(r.detections[c])});
    std::fputs(t.markdown().c_str(), stdout);
    return kExitOk;
  }

 private:
  ConfigArgs cfg_;
  std::string file_;
  double iou_ = 0.5;
  std::string thresholds_ = "devkit";
  bool strict_ = false, json_ = false;
};

class Schema : public Verb {
 public:
  explicit Schema(CLI::App& app)
      : Verb(app.add_subcommand("schema",
                                "print every config key of a config kind as a Markdown table")) {
    command_->footer("Examples:\n  mpq schema trial\n  mpq schema train");
    command_->add_option("kind", kind_, "trial | train")
        ->required()
        ->check(CLI::IsMember({"trial", "train"}));
  }

  int run(int*, char***) override {
    const auto& schema = kind_ == "trial" ? sweep::trial_schema() : train::train_schema();
    std::fputs(schema.markdown().c_str(), stdout);
    return kExitOk;
  }

 private:
  std::string kind_;
};

}  // namespace

void add_score_detections(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<ScoreDetections>(app));
}
void add_schema(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Schema>(app));
}

}  // namespace mpq::cli
