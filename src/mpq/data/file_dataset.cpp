#include <filesystem>
#include <fstream>

#include "mpq/data/file_datasets.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

// The one Dataset class behind every file-backed dataset (file_datasets.h, manifest_datasets.h):
// the layouts only list their files and labels.
namespace mpq::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Item = FileItem;

std::string sha_of_lines(const std::vector<std::string>& v) {
  Sha256 h;
  for (const auto& s : v) h.update(s + "\n");
  return h.hex();
}

class FileDataset final : public Dataset {
 public:
  FileDataset(std::string kind, fs::path dir, std::vector<Item> items,
              std::vector<std::string> classes, const FileDatasetOptions& opt, json manifest,
              std::string description, Task task = Task::kClassification)
      : task_(task),
        dir_(std::move(dir)),
        items_(std::move(items)),
        classes_(std::move(classes)),
        pre_(opt.preprocess),
        manifest_(std::move(manifest)),
        description_(std::move(description)) {
    if (items_.empty()) throw InputError(dir_.string() + ": no images");
    for (const auto& it : items_)
      if (it.bytes < 0)
        throw InputError((dir_ / it.rel).string() +
                         ": cannot read file (missing target of a link, or no permission)");
    if (pre_.crop > 0) {
      shape_ = {pre_.channels(), pre_.crop, pre_.crop};
    } else {
      // Without a crop every image must come out at the first one's size.
      Image first = read_image_file((dir_ / items_[0].rel).string(), pre_.color);
      int h = 0, w = 0;
      output_size(pre_.geometry(), first.width, first.height, &h, &w);
      shape_ = {pre_.channels(), h, w};
    }
    manifest_["images"] = items_.size();
    manifest_["classes"] = classes_.size();
    manifest_["classes_sha256"] = sha_of_lines(classes_);
    manifest_["directory"] = dir_.string();
    Sha256 h;
    h.update("mpq-files-v1\n" + kind + "\n" + manifest_.value("layout", "") + "\n" +
             manifest_.value("split", "") + "\n" + pre_.to_json().dump() + "\n");
    for (const auto& c : classes_) h.update("class " + c + "\n");
    for (const auto& it : items_)
      h.update(it.rel + "\t" + std::to_string(it.bytes) + "\t" + std::to_string(it.label) + "\n");
    if (opt.content_fingerprint) {
      std::vector<char> buf(1 << 20);
      for (const auto& it : items_) {
        std::ifstream in(dir_ / it.rel, std::ios::binary);
        if (!in) throw InputError((dir_ / it.rel).string() + ": cannot read image");
        while (in) {
          in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
          h.update(std::string(buf.data(), static_cast<size_t>(in.gcount())));
        }
      }
    }
    manifest_["fingerprint_mode"] = opt.content_fingerprint ? "content" : "listing";
    fingerprint_ = h.hex();
  }

  Task task() const override { return task_; }
  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  std::vector<int64_t> image_shape() const override { return shape_; }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<std::string> class_names() const override { return classes_; }
  void read_image(int64_t i, ImageData* out) const override {
    const auto& it = items_[static_cast<size_t>(i)];
    const std::string path = (dir_ / it.rel).string();
    Image img = read_image_file(path, pre_.color);
    int h = 0, w = 0;
    output_size(pre_.geometry(), img.width, img.height, &h, &w);
    if (h != shape_[1] || w != shape_[2])
      throw InputError(path + ": comes out at " + std::to_string(w) + "x" + std::to_string(h) +
                       " after preprocessing, but the dataset's images are " +
                       std::to_string(shape_[2]) + "x" + std::to_string(shape_[1]) +
                       " (set data.preprocess.crop to make every image the same size)");
    out->channels = shape_[0];
    out->height = h;
    out->width = w;
    out->pixels.resize(static_cast<size_t>(shape_[0]) * h * w);
    resize_crop(img, pre_.geometry(), out->pixels.data());
  }
  int64_t label(int64_t i) const override { return items_[static_cast<size_t>(i)].label; }
  std::string item_name(int64_t i) const override { return items_[static_cast<size_t>(i)].rel; }
  const Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override { return description_; }
  json manifest() const override { return manifest_; }

 private:
  Task task_;
  fs::path dir_;
  std::vector<Item> items_;
  std::vector<std::string> classes_;
  Preprocess pre_;
  json manifest_;
  std::string description_, fingerprint_;
  std::vector<int64_t> shape_;
};

}  // namespace

std::unique_ptr<Dataset> make_file_dataset(const std::string& kind, const std::string& dir,
                                           std::vector<FileItem> items,
                                           std::vector<std::string> classes,
                                           const FileDatasetOptions& options, json manifest,
                                           const std::string& description, Task task) {
  return std::make_unique<FileDataset>(kind, dir, std::move(items), std::move(classes), options,
                                       std::move(manifest), description, task);
}

}  // namespace mpq::data
