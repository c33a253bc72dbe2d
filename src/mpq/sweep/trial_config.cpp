#include "mpq/sweep/trial_config.h"

#include "mpq/data/fashion_mnist.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::sweep {
using nlohmann::json;

const Schema& trial_schema() {
  static const Schema s = [] {
    Schema k;
    k.string("/model/path", "default:resnet20",
             "TorchScript archive, or default:resnet20 / default:mobilenetv2 (trained and cached)")
        .boolean("/model/fold_bn", true, "fold BatchNorm into the preceding conv before quantizing")
        .int_list("/model/input_shape", {}, 1, 1 << 16,
                  "C,H,W for the shape probe (empty: from the archive, else the dataset)")
        .string("/model/cache_dir", "results/models", "where default models are trained and cached")
        .choice("/data/name", "fashion-mnist", {"fashion-mnist"}, "evaluation/calibration dataset")
        .string("/data/root", data::kFashionMnistDefaultRoot, "dataset directory")
        .integer("/data/eval_limit", 0, 0, 1LL << 40, "evaluate on the first N test images (0 = all)")
        .integer("/data/batch_size", 500, 1, 1 << 20, "evaluation batch size")
        .integer("/calibration/size", 256, 1, 1 << 24, "calibration images drawn from the train split")
        .integer("/calibration/seed", 0, 0, 1LL << 62, "seed of the calibration sample")
        .choice("/weights/method", "rtn", {"rtn"}, "weight quantization method")
        .integer("/weights/bits", 4, 2, 8, "weight bits b: codes in {-(2^(b-1)-1) .. 2^(b-1)-1}")
        .choice("/weights/granularity", "per_channel", {"per_channel", "per_layer"},
                "one scale per output channel, or one per layer (per-tensor)")
        .choice("/weights/first_layer", "quantize", {"quantize", "fp", "8bit"},
                "first layer: quantized like the rest, kept full precision, or 8-bit")
        .choice("/weights/last_layer", "quantize", {"quantize", "fp", "8bit"},
                "last layer: quantized like the rest, kept full precision, or 8-bit")
        .integer("/seed", 0, 0, 1LL << 62, "seed of every random choice the method makes")
        .string("/label", "", "display name in tables (not part of the trial's identity)")
        .integer("/threads", 0, 0, 4096, "threads (0 = all cores of this process's share)")
        .string("/output", "", "trial HDF5 file to write (\"\" = do not write)");
    return k;
  }();
  return s;
}

json trial_identity(const json& resolved) {
  json id = resolved;
  id["model"].erase("path");
  id["model"].erase("cache_dir");
  id["data"].erase("root");
  id["data"].erase("batch_size");
  id.erase("output");
  id.erase("threads");
  id.erase("label");
  if (id.contains("export")) id.erase("export");
  id["identity_version"] = 1;
  return id;
}

std::string trial_id(const json& resolved, const std::string& model_sha256,
                     const std::string& data_fingerprint) {
  return sha256_hex(trial_identity(resolved).dump() + "\n" + model_sha256 + "\n" + data_fingerprint);
}

std::vector<std::string> check_trial_semantics(const json& resolved) {
  std::vector<std::string> problems;
  (void)resolved;
  return problems;
}

json resolve_trial_config(const json& user, const std::string& source) {
  json resolved = trial_schema().resolve(user, source);
  auto problems = check_trial_semantics(resolved);
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "\nmpq: " : "") + source + ": " + problems[i];
    throw ConfigError(msg);
  }
  return resolved;
}

}  // namespace mpq::sweep
