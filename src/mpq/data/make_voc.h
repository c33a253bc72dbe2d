// A PASCAL VOC-format detection dataset generated from Fashion-MNIST (`mpq data make-voc`):
// no VOC data or weights can be downloaded here, so mpq's default detector trains and is tested
// on data in the exact on-disk format users have (docs/detection.md, "The default detector").
//
// Each image is a canvas (width and height drawn from [min_size, max_size]) with a smooth random
// background, on which 1..max_objects Fashion-MNIST items are composited (the item's intensity
// is its opacity). Items come from five well-separated Fashion-MNIST classes (trouser, dress, bag,
// ankle boot, sandal: shirt, T-shirt, pullover and coat are confused even by good 28x28
// classifiers, which would cap detection AP at what classification allows), each scaled to a
// side of [min_object, max_object] pixels with aspect jitter 0.8..1.25 and tinted red, green,
// blue or yellow; its VOC class is
//     voc_classes()[5 * tint + shape]      (shape = position in the list above)
// so all 20 VOC class names occur, equally often. Positions may leave the canvas (the box is clipped and the
// object marked truncated); later objects may occlude earlier ones. An object is marked
// difficult when its visible box is smaller than `difficult_side` pixels on its longer side,
// when less than 40% of it is visible (occlusion or truncation). Boxes are the tight boxes of
// the visible item pixels (opacity > 1/4), 1-based inclusive as VOC writes them.
//
// trainval images take their items from the Fashion-MNIST train split, test images from the test
// split. Everything is drawn from std::mt19937_64(seed): the same options give the same files.
// Layout: <out>/VOCdevkit/VOC2007/{JPEGImages/<id>.jpg (quality 90), Annotations/<id>.xml,
// ImageSets/Main/{trainval,train,val,test}.txt} (train/val: halves of trainval).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace mpq::data {

struct MakeVocOptions {
  int64_t trainval = 6000, test = 500;  ///< number of images
  int min_size = 128, max_size = 192;   ///< canvas sides
  int max_objects = 4;
  int min_object = 20, max_object = 80;  ///< item side before aspect jitter
  int difficult_side = 12;
  uint64_t seed = 0;
  std::string fashion_mnist_root;  ///< "" = the default location
};

/// Writes the dataset below `out` (created; existing files are overwritten). Returns the VOC
/// directory (<out>/VOCdevkit/VOC2007). Throws InputError if Fashion-MNIST cannot be read or a
/// file cannot be written, ConfigError for inconsistent options.
std::string make_voc(const std::string& out, const MakeVocOptions& options);

/// The synthetic VOC dataset of mpq's default detector (make_voc with default options),
/// generated into results/data/voc-fmnist on first use (under a lock, atomically renamed);
/// returns its VOCdevkit directory. It is also where data.name = "voc" looks without a root.
std::string default_synthetic_voc(const std::string& fashion_mnist_root);

/// What identifies that dataset (generator version and default options).
nlohmann::json synthetic_voc_identity();

}  // namespace mpq::data
