// mpq quantize: one quantization trial, written to HDF5.
#include <cstdio>

#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {
using nlohmann::json;

class Quantize : public Verb {
 public:
  explicit Quantize(CLI::App& app)
      : Verb(app.add_subcommand("quantize",
                                "run one quantization trial and write its HDF5 result")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq quantize --model default:resnet20 --bits 4 --granularity per_layer -o "
        "results/r20_w4.h5\n"
        "  mpq quantize --config configs/trials/rtn_w4.json --set weights.bits=3 -o "
        "results/w3.h5\n"
        "  mpq quantize --model default:mobilenetv2 --method multipoint --bits 4 --granularity "
        "per_layer \\\n"
        "      --set weights.multipoint.budget=0.1 -o results/mp.h5 --export "
        "results/mp_expanded.pt\n"
        "  mpq quantize --model default:resnet20 --method multipoint --bits 4 --set "
        "activations.bits=8 "
        "\\\n      -o results/mp_a8.h5 --export-int8 results/mp_int8.pt   # on int8 kernels\n"
        "Every config key is listed in docs/configs.md; --set overrides --config, and the flags "
        "(--method, --bits, ...) override both (docs/cli.md).");
    add_config_args(c, cfg_);
    c->add_option("--model", model_, "TorchScript archive or default:<arch>");
    c->add_option("--method", method_,
                  "weight method: rtn | mse | aciq | percentile | ocs | bit_alloc | gptq | "
                  "adaround | multipoint");
    c->add_option("--bits", bits_, "weight bits in [2, 8]");
    c->add_option("--dataset", dataset_, "fashion-mnist | imagenet | image_folder");
    c->add_option("--data-root", root_, "dataset directory");
    c->add_option("--granularity", gran_, "per_channel | per_layer");
    c->add_option("--threads", threads_, "threads (0 = all cores of this process's share)")
        ->check(CLI::Range(0, 4096));
    c->add_option("-o,--output", output_, "trial HDF5 file to write");
    c->add_option("--export", export_, "also write the deployable expanded TorchScript model");
    c->add_option("--export-int8", export_int8_,
                  "also write the model on LibTorch's int8 kernels (needs activations.bits "
                  "<= 8)");
    c->add_option("--save-logits", logits_,
                  "also write the quantized model's outputs per image (logits or "
                  "detections), labels and paths to this HDF5 file");
  }

  int run(int*, char***) override {
    json flags = json::object();
    if (!model_.empty()) flags["/model/path"] = model_;
    if (!method_.empty()) flags["/weights/method"] = method_;
    if (bits_ != 0) flags["/weights/bits"] = bits_;
    if (!gran_.empty()) flags["/weights/granularity"] = gran_;
    if (!dataset_.empty()) flags["/data/name"] = dataset_;
    if (!root_.empty()) flags["/data/root"] = root_;
    if (threads_ >= 0) flags["/threads"] = threads_;
    if (!output_.empty()) flags["/output"] = output_;
    if (!export_.empty()) flags["/export"] = export_;
    if (!export_int8_.empty()) flags["/export_int8"] = export_int8_;
    if (!logits_.empty()) flags["/save_logits"] = logits_;
    json cfg = sweep::resolve_trial_config(user_config(cfg_, flags), source_name(cfg_));
    sweep::TrialContext ctx;
    auto out = sweep::run_trial(cfg, ctx);
    std::printf("trial %s: %s\n", out.record.trial_id.substr(0, 16).c_str(),
                sweep::summarize(out.record).c_str());
    if (!out.output_path.empty()) std::printf("wrote %s\n", out.output_path.c_str());
    return kExitOk;
  }

 private:
  ConfigArgs cfg_;
  std::string model_, method_, gran_, output_, export_, export_int8_, dataset_, root_, logits_;
  int bits_ = 0, threads_ = -1;
};

}  // namespace

void add_quantize(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Quantize>(app));
}

}  // namespace mpq::cli
