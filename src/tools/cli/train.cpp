// mpq train: a default model (or the default detector) trained and saved as TorchScript.
#include "mpq/train/train.h"

#include <cstdio>

#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {
using nlohmann::json;

class Train : public Verb {
 public:
  explicit Train(CLI::App& app)
      : Verb(app.add_subcommand(
            "train", "train a default model on Fashion-MNIST and save it as TorchScript")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq train --arch resnet20 --output results/models/resnet20.pt\n"
        "  mpq train --arch mobilenetv2 --epochs 5 --seed 1\n"
        "  mpq train --config configs/train_tiny.json --set train_limit=2000\n"
        "Without --output the model goes to the cache (results/models/<arch>-<key>.pt), which\n"
        "`default:<arch>` model references use (`default:<arch>@seed=N`: the default config with\n"
        "--seed N, e.g. for error bars over independently trained models).");
    add_config_args(c, cfg_);
    c->add_option("--arch", arch_, "resnet20 | mobilenetv2 | ssdlite (detector)");
    c->add_option("--epochs", epochs_, "training epochs (default: resnet20 5, mobilenetv2 4)");
    c->add_option("--width", width_, "channel multiplier (default 1)");
    c->add_option("--train-limit", limit_, "train on the first N images (default all)");
    c->add_option("--test-limit", test_limit_,
                  "report accuracy on the first N test images (default all)");
    c->add_option("--seed", seed_, "seed (default 0)");
    c->add_option("--threads", threads_, "threads (default: all cores of this process's share)")
        ->check(CLI::Range(0, 4096));
    c->add_option("--data-root", root_,
                  "Fashion-MNIST directory (ssdlite: a VOCdevkit directory; default: the "
                  "synthetic one)");
    c->add_option("-o,--output", output_, "archive to write");
  }

  int run(int*, char***) override {
    json flags = json::object();
    if (!arch_.empty()) flags["/arch"] = arch_;
    if (epochs_ > 0) flags["/epochs"] = epochs_;
    if (width_ > 0) flags["/width"] = width_;
    if (limit_ >= 0) flags["/train_limit"] = limit_;
    if (test_limit_ >= 0) flags["/test_limit"] = test_limit_;
    if (seed_ >= 0) flags["/seed"] = seed_;
    if (threads_ >= 0) flags["/threads"] = threads_;
    if (!root_.empty()) flags["/data_root"] = root_;
    if (!output_.empty()) flags["/output"] = output_;
    json resolved = train::train_schema().resolve(user_config(cfg_, flags), source_name(cfg_));
    std::string output;
    auto cfg = train::train_config_from_json(resolved, &output);
    auto r = output.empty() ? train::ensure_cached(cfg, "results/models")
                            : train::train_model(cfg, output);
    std::printf("%s\ttest_top1=%.4f\ttrain_seconds=%.1f%s\n", r.path.c_str(), r.test_top1,
                r.seconds, r.from_cache ? "\t(cached)" : "");
    return kExitOk;
  }

 private:
  ConfigArgs cfg_;
  std::string arch_, output_, root_;
  int epochs_ = 0, threads_ = -1;
  long long limit_ = -1, test_limit_ = -1, seed_ = -1;
  double width_ = 0;
};

}  // namespace

void add_train(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Train>(app));
}

}  // namespace mpq::cli
