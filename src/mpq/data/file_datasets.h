// Datasets of image files on disk (docs/datasets.md, "Image folders" and "ImageNet layouts").
//
// image_folder: root[/split]/<class>/.../<file>, torchvision's ImageFolder rules: classes are the
//   sorted names of the sub-directories (class index = position), each class folder is walked
//   recursively (following symlinks) in sorted directory order with files sorted, and a file
//   counts if its lower-cased name ends with one of torchvision's IMG_EXTENSIONS (.jpg .jpeg
//   .png .ppm .bmp .pgm .tif .tiff .webp). A class folder without such a file is an error (as in
//   torchvision).
//
// imagenet: the split directory root/<split> in one of three layouts, detected automatically
// (or forced by `layout`):
//   folder  ImageFolder (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG);
//   flat    val/ILSVRC2012_val_00000001.JPEG ... with the devkit's
//           ILSVRC2012_validation_ground_truth.txt (one 1-based ILSVRC2012_ID per line, line n =
//           image n) and meta.mat (`synsets`: ILSVRC2012_ID, WNID, num_children; the classes are
//           the synsets without children), read with libmatio; or, instead of meta.mat, a text
//           synset list with one wnid per line in ILSVRC2012_ID order (line n = ID n);
//   kaggle  LOC_synset_mapping.txt ("<wnid> <words>") and LOC_val_solution.csv
//           (ImageId,PredictionString; class = first token) at the root, images under
//           ILSVRC/Data/CLS-LOC/{train/<wnid>/*, val/*}.
// In every layout the class index is the position of the wnid in the sorted wnid list
// (torchvision's order), so the same image gets the same label whatever the layout.
//
// Images are decoded and preprocessed on demand (image.h). Without a crop the images must all
// come out at one size (the first image's); a different one is an error naming the file.
//
// Fingerprint (listing mode, the default): SHA-256 over the dataset kind, layout, split, every
// example's relative path, file size and label, the class list and the preprocessing; cheap for
// 1.28M files (one stat each, no image read). Content mode (`content_fingerprint`) also hashes
// every file's bytes.
#pragma once

#include <memory>
#include <string>

#include "mpq/data/dataset.h"

namespace mpq::data {

struct FileDatasetOptions {
  Preprocess preprocess;
  bool content_fingerprint = false;
};

/// One image file of a file-backed dataset.
struct FileItem {
  std::string rel;    ///< path relative to the dataset directory
  int64_t bytes = 0;  ///< file size (-1: unreadable, an error when the dataset is made)
  int64_t label = 0;  ///< class index (-1 for unlabelled data)
};

/// A dataset of image files under `dir` (the class behind every dataset of this header and of
/// manifest_datasets.h): images decoded and preprocessed on demand, fingerprint as described
/// above, `manifest` completed with the counts and the class list's hash. `kind` names the
/// dataset in the fingerprint. InputError if `items` is empty or a file is unreadable.
std::unique_ptr<Dataset> make_file_dataset(const std::string& kind, const std::string& dir,
                                           std::vector<FileItem> items,
                                           std::vector<std::string> classes,
                                           const FileDatasetOptions& options,
                                           nlohmann::json manifest, const std::string& description,
                                           Task task = Task::kClassification);

/// An image_folder tree: `root` itself when `split` is "", else root/split.
std::unique_ptr<Dataset> open_image_folder(const std::string& root, const std::string& split,
                                           const FileDatasetOptions& options);

/// An ImageNet directory layout (/data/layout; docs/datasets.md); kAuto = detected per split.
enum class ImagenetLayout { kAuto, kFolder, kFlat, kKaggle };
/// "auto" | "folder" | "flat" | "kaggle".
const char* imagenet_layout_name(ImagenetLayout layout);
/// Inverse of imagenet_layout_name; ConfigError naming /data/layout otherwise.
ImagenetLayout parse_imagenet_layout(const std::string& name);

struct ImagenetOptions {
  ImagenetLayout layout = ImagenetLayout::kAuto;
  std::string ground_truth;  ///< flat: ground-truth file ("" = search the devkit locations)
  std::string meta;          ///< flat: meta.mat or synset list ("" = search)
};

/// The layout `open_imagenet` would use for root/split (folder, flat or kaggle, never kAuto).
/// Throws InputError if the directory matches none.
ImagenetLayout detect_imagenet_layout(const std::string& root, const std::string& split);

/// One ImageNet split (e.g. "val", "train").
std::unique_ptr<Dataset> open_imagenet(const std::string& root, const std::string& split,
                                       const ImagenetOptions& imagenet,
                                       const FileDatasetOptions& options);

}  // namespace mpq::data
