#include "mpq/data/factory.h"

#include "mpq/data/fashion_mnist.h"
#include "mpq/data/make_voc.h"
#include "mpq/data/voc.h"
#include "mpq/util/error.h"

namespace mpq::data {

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion-mnist", "imagenet", "image_folder",
                                                 "voc"};
  return names;
}

Task dataset_task(const std::string& name) {
  return name == "voc" ? Task::kDetection : Task::kClassification;
}

std::string default_root(const std::string& name) {
  return name == "fashion-mnist" ? kFashionMnistDefaultRoot : "";
}

std::string default_eval_split(const std::string& name) {
  if (name == "fashion-mnist") return "test";
  if (name == "imagenet") return "val";
  if (name == "voc") return "test";
  return "";
}

std::string default_calibration_split(const std::string& name) {
  if (name == "image_folder") return "";
  if (name == "voc") return "trainval";
  return "train";
}

std::string default_preset(const std::string& name) {
  if (name == "voc") return "none";  // detectors normalize and resize themselves
  return name == "fashion-mnist" ? "fashion-mnist" : "torchvision-v1";
}

std::string DataSpec::resolved_root() const {
  if (root.empty() && name == "voc") return default_synthetic_voc(kFashionMnistDefaultRoot);
  std::string r = root.empty() ? default_root(name) : root;
  if (r.empty())
    throw ConfigError("/data/root: the " + name +
                      " dataset has no default location; set it (e.g. "
                      "--set data.root=/path/to/" +
                      name + ")");
  return r;
}

std::string DataSpec::key() const {
  return name + "|" + resolved_root() + "|" + preprocess.to_json().dump() + "|" + imagenet.layout +
         "|" + imagenet.ground_truth + "|" + imagenet.meta + "|" +
         (content_fingerprint ? "content" : "listing") + "|" + year;
}

std::unique_ptr<Dataset> open_dataset(const DataSpec& spec, const std::string& split) {
  const std::string root = spec.resolved_root();
  FileDatasetOptions fo{spec.preprocess, spec.content_fingerprint};
  if (spec.name == "fashion-mnist") {
    if (split != "train" && split != "test")
      throw ConfigError("fashion-mnist has the splits \"train\" and \"test\", not \"" + split +
                        "\"");
    return load_fashion_mnist(root, split == "train" ? Split::kTrain : Split::kTest, 0,
                              spec.preprocess);
  }
  if (spec.name == "imagenet") return open_imagenet(root, split, spec.imagenet, fo);
  if (spec.name == "image_folder") return open_image_folder(root, split, fo);
  if (spec.name == "voc")
    return open_voc(root, spec.year, split, spec.preprocess, spec.content_fingerprint);
  throw ConfigError("/data/name: unknown dataset '" + spec.name + "'");
}

}  // namespace mpq::data
