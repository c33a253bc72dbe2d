// mpq eval: a full-precision model on a dataset.
#include <algorithm>
#include <cstdio>

#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {
using nlohmann::json;

class Eval : public Verb {
 public:
  explicit Eval(CLI::App& app)
      : Verb(app.add_subcommand(
            "eval",
            "evaluate a full-precision model on a dataset (Fashion-MNIST, ImageNet, folders)")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq eval --model default:resnet20\n"
        "  mpq eval --model results/models/mobilenetv2-<key>.pt --threads 1 --limit 2000\n"
        "  mpq eval --model resnet18.pt --dataset imagenet --data-root /data/imagenet\n"
        "  mpq eval --model resnet50_v2.pt --dataset imagenet --data-root /data/imagenet \\\n"
        "      --set data.preprocess.preset=torchvision-v2 --set data.eval_subset=5000\n"
        "Data keys (data.*) are the trial config's: docs/configs.md, docs/datasets.md.");
    add_config_args(c, cfg_);
    c->add_option("--model", model_,
                  "TorchScript archive or default:<arch> (default "
                  "default:resnet20)");
    c->add_option("--dataset", dataset_, "fashion-mnist | imagenet | image_folder");
    c->add_option("--data-root", root_, "dataset directory");
    c->add_option("--limit", limit_, "first N evaluation images (0 = all)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--batch-size", batch_, "batch size")->check(CLI::PositiveNumber);
    c->add_option("--threads", threads_, "threads (0 = all cores of this process's share)")
        ->check(CLI::Range(0, 4096));
    c->add_flag("--no-fold-bn", no_fold_, "evaluate without folding BatchNorm");
    c->add_option("--save-logits", logits_,
                  "also write the model outputs (logits, or detections), labels and paths to "
                  "this HDF5 file");
  }

  int run(int*, char***) override {
    json flags = json::object();
    if (!model_.empty()) flags["/model/path"] = model_;
    if (!dataset_.empty()) flags["/data/name"] = dataset_;
    if (!root_.empty()) flags["/data/root"] = root_;
    if (limit_ >= 0) flags["/data/eval_limit"] = limit_;
    if (batch_ > 0) flags["/data/batch_size"] = batch_;
    if (threads_ >= 0) flags["/threads"] = threads_;
    if (no_fold_) flags["/model/fold_bn"] = false;
    json doc = user_config(cfg_, flags);
    // One evaluation reads every image once: no point in writing the image cache unless asked.
    if (!doc.contains("data") || !doc["data"].contains("cache")) doc["data"]["cache"] = false;
    json cfg = sweep::resolve_trial_config(doc, source_name(cfg_));
    sweep::TrialContext ctx;
    json r = sweep::evaluate_fp(cfg, ctx, logits_);
    // Fixed order first (what `mpq eval` always printed), then whatever the task adds.
    std::vector<std::string> keys = {
        "model",  "data",    "preprocessing",     "top1",   "top5", "map_voc07", "map_voc12",
        "n_eval", "seconds", "images_per_second", "threads"};
    for (const auto& [k, v] : r.items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    for (const auto& k : keys) {
      if (!r.contains(k)) continue;
      const json& v = r[k];
      std::string key = k == "n_eval" ? "images" : k;
      if (v.is_number_float())
        std::printf("%s\t%.4f\n", key.c_str(), v.get<double>());
      else
        std::printf("%s\t%s\n", key.c_str(),
                    v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    }
    return kExitOk;
  }

 private:
  ConfigArgs cfg_;
  std::string model_, root_, dataset_, logits_;
  long long limit_ = -1, batch_ = 0;
  int threads_ = -1;
  bool no_fold_ = false;
};

}  // namespace

void add_eval(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Eval>(app));
}

}  // namespace mpq::cli
