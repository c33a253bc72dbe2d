// Building datasets from a config (the /data block of a trial config, docs/configs.md): the only
// place that knows dataset names, their default roots, splits and preprocessing presets.
//
//   name           default root                         eval split  calibration split  preset
//   fashion-mnist  /usr/share/datasets/fashion-mnist    test        train fashion-mnist imagenet
//   (required)                           val         train              torchvision-v1 image_folder
//   (required)                           "" (root)   "" (root)          torchvision-v1 voc
//   synthetic (make_voc.h, generated)    test        trainval           none
//   imagenet_samples  results/data/imagenet_samples  "" (all)  "" (all)        torchvision-v1
//   photos            results/data/photos            eval      calibration     torchvision-v1
// (imagenet_samples and photos: manifest_datasets.h; with a pretrained:<name> model the preset
// "auto" is the model's, sweep/trial_config.h.)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"
#include "mpq/data/file_datasets.h"

namespace mpq::data {

/// Everything that defines a dataset split except the split name.
struct DataSpec {
  std::string name = "fashion-mnist";
  std::string root;  ///< "" = the dataset's default root
  Preprocess preprocess = preprocess_preset("fashion-mnist");
  ImagenetOptions imagenet;
  std::string year = "2007";  ///< voc: VOC2007 or VOC2012
  bool content_fingerprint = false;

  /// The root to use ("" resolved to the default; ConfigError if the dataset has none).
  std::string resolved_root() const;
  /// A string identifying the spec (cache keys).
  std::string key() const;
};

/// Dataset names accepted by /data/name.
const std::vector<std::string>& dataset_names();
/// The datasets /data/name accepts, parsed once (dataset_kind) and compared as this enum.
enum class DatasetKind { kFashionMnist, kImagenet, kImageFolder, kVoc, kImagenetSamples, kPhotos };
/// The kind of a dataset name; ConfigError naming /data/name for an unknown one.
DatasetKind dataset_kind(const std::string& name);
/// The task of a dataset name: detection for "voc", fidelity for "photos", classification
/// otherwise.
Task dataset_task(const std::string& name);
/// Defaults of a dataset name (table in the header).
std::string default_root(const std::string& name);
std::string default_eval_split(const std::string& name);
std::string default_calibration_split(const std::string& name);
std::string default_preset(const std::string& name);

/// Opens one split. Throws ConfigError for an unknown name or split, InputError for data problems.
std::unique_ptr<Dataset> open_dataset(const DataSpec& spec, const std::string& split);

}  // namespace mpq::data
