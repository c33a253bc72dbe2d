// Datasets described by a manifest.json next to their images (docs/datasets.md, "Real photos"),
// both made by scripts/pretrained.sh (`scripts/install-deps.sh --with-pretrained`):
//
// imagenet_samples  foolbox 3.3.4's 20 labelled ImageNet images (imagenet_<nn>_<class>.jpg),
//                   classification with 1000 classes in torchvision's order (the class index is
//                   the one in the file name; class names are "0" ... "999"). One split: every
//                   image (split "" or "all"); enough to check a model and its preprocessing (a
//                   75% model gets about 15 of 20), not to measure accuracy.
// photos            real photographs gathered from Debian packages by scripts/gather_photos.py,
//                   unlabelled: the task is fidelity against the FP model (data::Task::kFidelity).
//                   Splits "eval", "calibration" (the manifest's deterministic split of each
//                   image) and "all".
//
// manifest.json (UTF-8 JSON): {"format": "mpq-imagenet-samples" | "mpq-photos", "images": [{"file":
// path relative to the root, "label": class (samples), "split": "eval" | "calibration" (photos),
// "sha256", "package", "licence", ...}], ...}. Images keep the manifest's order. Opening checks
// the format and that every listed file exists; a missing file or a malformed manifest is one
// InputError line naming the manifest and the entry, with the command that makes them again.
// What the manifest records per image beyond file, label and split (package, version, licence,
// source path) goes into the dataset's manifest as `provenance` (package counts and licences).
#pragma once

#include <memory>
#include <string>

#include "mpq/data/file_datasets.h"

namespace mpq::data {

/// The default roots (relative to the working directory, like results/models).
inline constexpr const char* kImagenetSamplesDefaultRoot = "results/data/imagenet_samples";
inline constexpr const char* kPhotosDefaultRoot = "results/data/photos";

/// foolbox's labelled ImageNet samples at `root` (split "" or "all").
std::unique_ptr<Dataset> open_imagenet_samples(const std::string& root, const std::string& split,
                                               const FileDatasetOptions& options);

/// The photos at `root`, one split ("eval", "calibration" or "all").
std::unique_ptr<Dataset> open_photos(const std::string& root, const std::string& split,
                                     const FileDatasetOptions& options);

}  // namespace mpq::data
