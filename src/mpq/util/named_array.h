// A named float64 array with a shape, for results that are tables rather than scalars (per-class
// AP, saved detections): evaluators produce them, trial files store them under /results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mpq {

struct NamedArray {
  std::string name;             ///< dataset name, e.g. "ap_voc07"
  std::vector<int64_t> shape;   ///< row-major
  std::vector<double> values;   ///< product(shape) values
  std::string description;      ///< stored as the dataset's "description" attribute
};

}  // namespace mpq
