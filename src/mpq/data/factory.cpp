#include "mpq/data/factory.h"

#include "mpq/data/fashion_mnist.h"
#include "mpq/data/make_voc.h"
#include "mpq/data/manifest_datasets.h"
#include "mpq/data/voc.h"
#include "mpq/util/error.h"

namespace mpq::data {

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {
      "fashion-mnist", "imagenet", "image_folder", "voc", "imagenet_samples", "photos"};
  return names;
}

DatasetKind dataset_kind(const std::string& name) {
  if (name == "fashion-mnist") return DatasetKind::kFashionMnist;
  if (name == "imagenet") return DatasetKind::kImagenet;
  if (name == "image_folder") return DatasetKind::kImageFolder;
  if (name == "voc") return DatasetKind::kVoc;
  if (name == "imagenet_samples") return DatasetKind::kImagenetSamples;
  if (name == "photos") return DatasetKind::kPhotos;
  throw ConfigError("/data/name: unknown dataset '" + name + "'");
}

Task dataset_task(const std::string& name) {
  switch (dataset_kind(name)) {
    case DatasetKind::kVoc:
      return Task::kDetection;
    case DatasetKind::kPhotos:
      return Task::kFidelity;
    default:
      break;
  }
  return Task::kClassification;
}

std::string default_root(const std::string& name) {
  switch (dataset_kind(name)) {
    case DatasetKind::kFashionMnist:
      return kFashionMnistDefaultRoot;
    case DatasetKind::kImagenetSamples:
      return kImagenetSamplesDefaultRoot;
    case DatasetKind::kPhotos:
      return kPhotosDefaultRoot;
    default:
      break;
  }
  return "";
}

std::string default_eval_split(const std::string& name) {
  switch (dataset_kind(name)) {
    case DatasetKind::kFashionMnist:
    case DatasetKind::kVoc:
      return "test";
    case DatasetKind::kImagenet:
      return "val";
    case DatasetKind::kPhotos:
      return "eval";
    case DatasetKind::kImageFolder:
    case DatasetKind::kImagenetSamples:
      break;
  }
  return "";
}

std::string default_calibration_split(const std::string& name) {
  switch (dataset_kind(name)) {
    case DatasetKind::kImageFolder:
    case DatasetKind::kImagenetSamples:
      return "";
    case DatasetKind::kPhotos:
      return "calibration";
    case DatasetKind::kVoc:
      return "trainval";
    case DatasetKind::kFashionMnist:
    case DatasetKind::kImagenet:
      break;
  }
  return "train";
}

std::string default_preset(const std::string& name) {
  switch (dataset_kind(name)) {
    case DatasetKind::kVoc:
      return "none";  // detectors normalize and resize themselves
    case DatasetKind::kFashionMnist:
      return "fashion-mnist";
    case DatasetKind::kImagenet:
    case DatasetKind::kImageFolder:
    case DatasetKind::kImagenetSamples:
    case DatasetKind::kPhotos:
      break;
  }
  return "torchvision-v1";
}

std::string DataSpec::resolved_root() const {
  if (root.empty() && dataset_kind(name) == DatasetKind::kVoc)
    return default_synthetic_voc(kFashionMnistDefaultRoot);
  std::string r = root.empty() ? default_root(name) : root;
  if (r.empty())
    throw ConfigError("/data/root: the " + name +
                      " dataset has no default location; set it (e.g. "
                      "--set data.root=/path/to/" +
                      name + ")");
  return r;
}

std::string DataSpec::key() const {
  return name + "|" + resolved_root() + "|" + preprocess.to_json().dump() + "|" +
         imagenet_layout_name(imagenet.layout) + "|" + imagenet.ground_truth + "|" + imagenet.meta +
         "|" + (content_fingerprint ? "content" : "listing") + "|" + year;
}

std::unique_ptr<Dataset> open_dataset(const DataSpec& spec, const std::string& split) {
  const std::string root = spec.resolved_root();
  FileDatasetOptions fo{spec.preprocess, spec.content_fingerprint};
  switch (dataset_kind(spec.name)) {
    case DatasetKind::kFashionMnist:
      if (split != "train" && split != "test")
        throw ConfigError("fashion-mnist has the splits \"train\" and \"test\", not \"" + split +
                          "\"");
      return load_fashion_mnist(root, split == "train" ? Split::kTrain : Split::kTest, 0,
                                spec.preprocess);
    case DatasetKind::kImagenet:
      return open_imagenet(root, split, spec.imagenet, fo);
    case DatasetKind::kImageFolder:
      return open_image_folder(root, split, fo);
    case DatasetKind::kImagenetSamples:
      return open_imagenet_samples(root, split, fo);
    case DatasetKind::kPhotos:
      return open_photos(root, split, fo);
    case DatasetKind::kVoc:
      break;
  }
  return open_voc(root, spec.year, split, spec.preprocess, spec.content_fingerprint);
}

}  // namespace mpq::data
