// mpq data export | make-voc: see what the model sees; write a synthetic VOC dataset.
#include <cstdio>

#include "mpq/data/make_voc.h"
#include "mpq/store/data_export.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "mpq/util/threads.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {
using nlohmann::json;

class DataExport : public Verb {
 public:
  explicit DataExport(CLI::App* data)
      : Verb(data->add_subcommand(
            "export",
            "write the preprocessed images of a split to HDF5 (/images, /labels, /paths)")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq data export --set data.name=imagenet --set data.root=/data/imagenet -o val.h5 "
        "--limit 100\n"
        "  mpq data export --config configs/trials/rtn_w4.json --split train -o train.h5\n"
        "/images holds float32 [N, C, H, W], bit for bit the tensors the model gets.");
    add_config_args(c, cfg_);
    c->add_option("-o,--output", output_, "HDF5 file to write")->required();
    c->add_option("--limit", limit_, "first N images (0 = all)")->check(CLI::NonNegativeNumber);
    c->add_option("--split", split_,
                  "split to export (default: the evaluation split, with data.eval_subset / "
                  "eval_limit applied)");
    c->add_option("--threads", threads_, "decoding threads (0 = all cores)")
        ->check(CLI::Range(0, 4096));
  }

  int run(int*, char***) override {
    json flags = json::object();
    if (threads_ >= 0) flags["/threads"] = threads_;
    json cfg = sweep::resolve_trial_config(user_config(cfg_, flags), source_name(cfg_));
    auto tc = sweep::parse_trial_config(cfg);
    int threads = apply_threads(tc.threads);
    sweep::TrialContext ctx;
    std::shared_ptr<const data::Dataset> d = split_.empty()
                                                 ? ctx.eval_set(tc.data, false, threads).data
                                                 : ctx.split(tc.data.spec, split_);
    int64_t n = store::export_dataset(*d, limit_, output_, tc.data.loader(threads),
                                      {{"split", split_.empty() ? tc.data.eval_split : split_}});
    std::printf("wrote %s: %lld images of %s\n", output_.c_str(), static_cast<long long>(n),
                d->describe().c_str());
    return kExitOk;
  }

 private:
  ConfigArgs cfg_;
  std::string output_, split_;
  long long limit_ = 0;
  int threads_ = -1;
};

class MakeVoc : public Verb {
 public:
  explicit MakeVoc(CLI::App* data)
      : Verb(data->add_subcommand(
            "make-voc",
            "write a synthetic PASCAL VOC dataset (Fashion-MNIST objects on canvases)")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq data make-voc -o results/data/my-voc --trainval 500 --test 100\n"
        "  mpq eval --model default:ssdlite --dataset voc --data-root "
        "results/data/my-voc/VOCdevkit\n"
        "Real JPEGs, VOC XML annotations (20 classes, difficult/truncated flags) and ImageSets,\n"
        "generated deterministically from the seed (docs/detection.md). Without --data-root,\n"
        "--dataset voc uses the default one (results/data/voc-fmnist, generated on first use).");
    c->add_option("-o,--output", out_, "output directory (VOCdevkit/VOC2007 is written below it)")
        ->required();
    c->add_option("--trainval", trainval_, "trainval images")
        ->capture_default_str()
        ->check(CLI::Range(2, 10000000));
    c->add_option("--test", test_, "test images")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000000));
    c->add_option("--seed", seed_, "seed")->capture_default_str()->check(CLI::NonNegativeNumber);
  }

  int run(int*, char***) override {
    data::MakeVocOptions o;
    o.trainval = trainval_;
    o.test = test_;
    o.seed = static_cast<uint64_t>(seed_);
    std::string dir = data::make_voc(out_, o);
    std::printf("wrote %s (%lld trainval + %lld test images)\n", dir.c_str(), trainval_, test_);
    return kExitOk;
  }

 private:
  std::string out_;
  long long trainval_ = 2000, test_ = 500, seed_ = 0;
};

}  // namespace

void add_data(CLI::App& app, Verbs& verbs) {
  auto* data = app.add_subcommand("data", "datasets: see what the model sees");
  data->require_subcommand(1);
  verbs.push_back(std::make_unique<DataExport>(data));
  verbs.push_back(std::make_unique<MakeVoc>(data));
}

}  // namespace mpq::cli
