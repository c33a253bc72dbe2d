// PASCAL VOC detection data (docs/datasets.md, "PASCAL VOC"; ../shared/datasets.md §3).
//
// Layout: <root>/VOC<year>/ (or <root> itself when it holds Annotations/):
//   Annotations/<id>.xml        annotation/size/{width,height}; per object: name, truncated,
//                               difficult (0/1, missing = 0), bndbox/{xmin,ymin,xmax,ymax}
//                               (integers, 1-based, inclusive)
//   JPEGImages/<id>.jpg
//   ImageSets/Main/<split>.txt  one image id per line (train, val, trainval, test)
// Classes, in the standard order (class index = position): aeroplane bicycle bird boat bottle bus
// car cat chair cow diningtable dog horse motorbike person pottedplant sheep sofa train tvmonitor.
//
// Every annotation of the split is parsed when the split is opened (pugixml); a malformed file,
// an unknown class, a box outside the image or with xmax < xmin, a missing JPEG for a listed id
// or an id without annotation is an InputError naming the file and the field.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"

namespace mpq::data {

/// The 20 VOC class names in the standard order.
const std::array<const char*, 20>& voc_classes();

/// One VOC object: box in the annotation's 1-based inclusive pixel coordinates.
struct VocObject {
  int label = 0;  ///< index into voc_classes()
  float xmin = 0, ymin = 0, xmax = 0, ymax = 0;
  bool difficult = false, truncated = false;
};

struct VocAnnotation {
  int width = 0, height = 0;
  std::vector<VocObject> objects;
};

/// Parses one annotation file (InputError naming the file and the field on any problem).
VocAnnotation parse_voc_annotation(const std::string& path);

/// The VOC directory of `root` for `year` ("2007"/"2012"): root/VOC<year> if it exists, else
/// root itself when it holds Annotations/ (InputError otherwise).
std::string voc_directory(const std::string& root, const std::string& year);

/// One split (ImageSets/Main/<split>.txt) as a detection dataset.
std::unique_ptr<Dataset> open_voc(const std::string& root, const std::string& year,
                                  const std::string& split, const Preprocess& preprocess,
                                  bool content_fingerprint);

}  // namespace mpq::data
