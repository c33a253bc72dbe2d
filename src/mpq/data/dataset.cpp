#include "mpq/data/dataset.h"

#include <algorithm>
#include <numeric>

#include "mpq/data/calibration.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::data {
using nlohmann::json;

const char* task_name(Task t) {
  switch (t) {
    case Task::kDetection:
      return "detection";
    case Task::kFidelity:
      return "fidelity";
    case Task::kClassification:
      break;
  }
  return "classification";
}

bool Dataset::fixed_size() const {
  auto s = image_shape();
  return s.size() == 3 && s[1] > 0 && s[2] > 0;
}

DetectionTarget Dataset::detection_target(int64_t i) const {
  throw InputError(describe() + ": example " + std::to_string(i) +
                   " has no detection target (not a detection dataset)");
}

int64_t Dataset::image_bytes() const {
  int64_t n = 1;
  for (int64_t s : image_shape()) n *= s;
  return n;
}

std::vector<int64_t> Dataset::image_shape_of(int64_t) const {
  return image_shape();
}

namespace {

class Subset final : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices, std::string what)
      : base_(std::move(base)), idx_(std::move(indices)), what_(std::move(what)) {
    for (int64_t i : idx_) MPQ_ASSERT(i >= 0 && i < base_->size(), "subset index out of range");
    Sha256 h;
    h.update("mpq-subset-v1\n" + base_->fingerprint() + "\n");
    h.update(std::string(reinterpret_cast<const char*>(idx_.data()), idx_.size() * 8));
    fingerprint_ = h.hex();
  }
  Task task() const override { return base_->task(); }
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  std::vector<int64_t> image_shape() const override { return base_->image_shape(); }
  std::vector<int64_t> image_shape_of(int64_t i) const override {
    return base_->image_shape_of(at(i));
  }
  int64_t num_classes() const override { return base_->num_classes(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }
  void read_image(int64_t i, ImageData* out) const override { base_->read_image(at(i), out); }
  int64_t label(int64_t i) const override { return base_->label(at(i)); }
  DetectionTarget detection_target(int64_t i) const override {
    return base_->detection_target(at(i));
  }
  std::string item_name(int64_t i) const override { return base_->item_name(at(i)); }
  const Preprocess& preprocess() const override { return base_->preprocess(); }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override {
    return what_ + " (" + std::to_string(idx_.size()) + " of " + base_->describe() + ")";
  }
  json manifest() const override {
    json m = base_->manifest();
    m["subset"] = what_;
    m["subset_size"] = idx_.size();
    return m;
  }

 private:
  int64_t at(int64_t i) const { return idx_[static_cast<size_t>(i)]; }
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> idx_;
  std::string what_, fingerprint_;
};

}  // namespace

std::unique_ptr<Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                                const std::string& what) {
  return std::make_unique<Subset>(std::move(base), std::move(indices), what);
}

std::vector<int64_t> stratified_subset(const Dataset& data, int64_t count, uint64_t seed) {
  const int64_t n = data.size();
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (count >= n) return all;
  const int64_t classes = data.num_classes();
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(classes));
  for (int64_t i = 0; i < n; ++i) {
    // Detection examples have no single class: stratify by the first object's class.
    int64_t c = data.label(i);
    if (c < 0) {
      auto t = data.detection_target(i);
      c = t.labels.empty() ? 0 : t.labels.front();
    }
    members[static_cast<size_t>(c)].push_back(i);
  }
  // Largest-remainder apportionment of `count` over the classes by their sizes.
  std::vector<int64_t> take(static_cast<size_t>(classes));
  std::vector<std::pair<double, int64_t>> remainder;
  int64_t given = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const double exact = static_cast<double>(count) *
                         static_cast<double>(members[static_cast<size_t>(c)].size()) /
                         static_cast<double>(n);
    take[static_cast<size_t>(c)] = static_cast<int64_t>(exact);
    given += take[static_cast<size_t>(c)];
    remainder.push_back({exact - static_cast<double>(take[static_cast<size_t>(c)]), c});
  }
  std::stable_sort(remainder.begin(), remainder.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t r = 0; given < count && r < remainder.size(); ++r) {
    auto c = static_cast<size_t>(remainder[r].second);
    if (take[c] < static_cast<int64_t>(members[c].size())) {
      ++take[c];
      ++given;
    }
  }
  std::vector<int64_t> out;
  for (int64_t c = 0; c < classes; ++c) {
    const auto& m = members[static_cast<size_t>(c)];
    auto pick = calibration_indices(static_cast<int64_t>(m.size()), take[static_cast<size_t>(c)],
                                    seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(c));
    for (int64_t p : pick) out.push_back(m[static_cast<size_t>(p)]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace mpq::data
