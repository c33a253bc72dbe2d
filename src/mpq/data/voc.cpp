#include "mpq/data/voc.h"

#include <pugixml.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::data {
namespace fs = std::filesystem;
using nlohmann::json;

const std::array<const char*, 20>& voc_classes() {
  static const std::array<const char*, 20> names = {
      "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",         "car",
      "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",       "motorbike",
      "person",    "pottedplant",     "sheep",       "sofa",   "train",       "tvmonitor"};
  return names;
}

namespace {

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read " + what + " (" + std::strerror(errno) + ")");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A required integer child of `node`: "<file>: <where>/<name>: ..." on any problem.
int int_field(const pugi::xml_node& node, const char* name, const std::string& where) {
  pugi::xml_node c = node.child(name);
  if (!c) throw InputError(where + "/" + name + ": missing");
  std::string text = c.text().as_string();
  char* end = nullptr;
  // VOC writes integers; a few tools write "123.0": accept integral values only.
  double v = std::strtod(text.c_str(), &end);
  while (end && (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')) ++end;
  if (text.empty() || end == text.c_str() || *end != '\0' || v != static_cast<double>(static_cast<long>(v)))
    throw InputError(where + "/" + name + ": expected an integer, got '" + text + "'");
  return static_cast<int>(v);
}

class Voc final : public Dataset {
 public:
  Voc(fs::path dir, std::string year, std::string split, std::vector<std::string> ids,
      std::vector<VocAnnotation> ann, std::vector<int64_t> sizes, const Preprocess& pre,
      std::string fingerprint)
      : dir_(std::move(dir)),
        year_(std::move(year)),
        split_(std::move(split)),
        ids_(std::move(ids)),
        ann_(std::move(ann)),
        sizes_(std::move(sizes)),
        pre_(pre),
        fingerprint_(std::move(fingerprint)) {
    if (pre_.crop > 0)
      throw ConfigError("/data/preprocess/crop: a centre crop would cut boxes off; detection "
                        "takes the whole image (resize, or size [h, w])");
    shape_ = {pre_.channels(), pre_.size_h, pre_.size_w};
  }
  Task task() const override { return Task::kDetection; }
  int64_t size() const override { return static_cast<int64_t>(ids_.size()); }
  std::vector<int64_t> image_shape() const override { return shape_; }
  std::vector<int64_t> image_shape_of(int64_t i) const override {
    const auto& a = ann_[static_cast<size_t>(i)];
    int h = 0, w = 0;
    output_size(pre_.geometry(), a.width, a.height, &h, &w);
    return {pre_.channels(), h, w};
  }
  int64_t num_classes() const override { return 20; }
  std::vector<std::string> class_names() const override {
    return {voc_classes().begin(), voc_classes().end()};
  }
  void read_image(int64_t i, ImageData* out) const override {
    const std::string path = jpeg(i);
    Image img = read_image_file(path, pre_.color);
    const auto& a = ann_[static_cast<size_t>(i)];
    if (img.width != a.width || img.height != a.height)
      throw InputError(path + ": image is " + std::to_string(img.width) + "x" +
                       std::to_string(img.height) + " but its annotation says " +
                       std::to_string(a.width) + "x" + std::to_string(a.height));
    int h = 0, w = 0;
    output_size(pre_.geometry(), img.width, img.height, &h, &w);
    out->channels = pre_.channels();
    out->height = h;
    out->width = w;
    out->pixels.resize(static_cast<size_t>(out->channels) * h * w);
    resize_crop(img, pre_.geometry(), out->pixels.data());
  }
  int64_t label(int64_t) const override { return -1; }
  DetectionTarget detection_target(int64_t i) const override {
    const auto& a = ann_[static_cast<size_t>(i)];
    DetectionTarget t;
    t.width = a.width;
    t.height = a.height;
    for (const auto& o : a.objects) {
      t.boxes.insert(t.boxes.end(), {o.xmin, o.ymin, o.xmax, o.ymax});
      t.labels.push_back(o.label);
      t.difficult.push_back(o.difficult ? 1 : 0);
    }
    return t;
  }
  std::string item_name(int64_t i) const override {
    return "JPEGImages/" + ids_[static_cast<size_t>(i)] + ".jpg";
  }
  const Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override {
    return "voc" + year_ + " " + split_ + " (" + std::to_string(ids_.size()) + " images) at " +
           dir_.string();
  }
  json manifest() const override {
    int64_t objects = 0, difficult = 0;
    for (const auto& a : ann_)
      for (const auto& o : a.objects) {
        ++objects;
        difficult += o.difficult;
      }
    return {{"dataset", "voc"},
            {"split", split_},
            {"year", year_},
            {"layout", "VOCdevkit"},
            {"images", ids_.size()},
            {"objects", objects},
            {"difficult_objects", difficult},
            {"classes", 20},
            {"label_mapping", "class index = position in the 20 standard VOC class names"},
            {"directory", dir_.string()}};
  }

 private:
  std::string jpeg(int64_t i) const {
    return (dir_ / "JPEGImages" / (ids_[static_cast<size_t>(i)] + ".jpg")).string();
  }
  fs::path dir_;
  std::string year_, split_;
  std::vector<std::string> ids_;
  std::vector<VocAnnotation> ann_;
  std::vector<int64_t> sizes_;
  Preprocess pre_;
  std::string fingerprint_;
  std::vector<int64_t> shape_;
};

}  // namespace

VocAnnotation parse_voc_annotation(const std::string& path) {
  const std::string text = read_text(path, "annotation");
  pugi::xml_document doc;
  pugi::xml_parse_result ok = doc.load_buffer(text.data(), text.size());
  if (!ok)
    throw InputError(path + ": malformed XML at byte " + std::to_string(ok.offset) + " (" +
                     ok.description() + ")");
  pugi::xml_node root = doc.child("annotation");
  if (!root) throw InputError(path + ": no <annotation> element");
  pugi::xml_node size = root.child("size");
  if (!size) throw InputError(path + ": annotation/size: missing");
  VocAnnotation a;
  a.width = int_field(size, "width", path + ": annotation/size");
  a.height = int_field(size, "height", path + ": annotation/size");
  if (a.width <= 0 || a.height <= 0)
    throw InputError(path + ": annotation/size: width and height must be positive");
  int k = 0;
  for (pugi::xml_node o : root.children("object")) {
    const std::string where = path + ": annotation/object[" + std::to_string(k++) + "]";
    VocObject obj;
    const std::string name = o.child("name").text().as_string();
    obj.label = -1;
    for (size_t c = 0; c < voc_classes().size(); ++c)
      if (name == voc_classes()[c]) obj.label = static_cast<int>(c);
    if (obj.label < 0)
      throw InputError(where + "/name: unknown class '" + name + "' (not one of the 20 VOC classes)");
    if (o.child("difficult")) obj.difficult = int_field(o, "difficult", where) != 0;
    if (o.child("truncated")) obj.truncated = int_field(o, "truncated", where) != 0;
    pugi::xml_node b = o.child("bndbox");
    if (!b) throw InputError(where + "/bndbox: missing");
    const std::string bw = where + "/bndbox";
    const int x1 = int_field(b, "xmin", bw), y1 = int_field(b, "ymin", bw);
    const int x2 = int_field(b, "xmax", bw), y2 = int_field(b, "ymax", bw);
    if (x2 < x1 || y2 < y1)
      throw InputError(bw + ": xmax < xmin or ymax < ymin (" + std::to_string(x1) + "," +
                       std::to_string(y1) + "," + std::to_string(x2) + "," + std::to_string(y2) + ")");
    if (x1 < 1 || y1 < 1 || x2 > a.width || y2 > a.height)
      throw InputError(bw + ": box (" + std::to_string(x1) + "," + std::to_string(y1) + "," +
                       std::to_string(x2) + "," + std::to_string(y2) +
                       ") outside the 1-based image of " + std::to_string(a.width) + "x" +
                       std::to_string(a.height));
    obj.xmin = static_cast<float>(x1);
    obj.ymin = static_cast<float>(y1);
    obj.xmax = static_cast<float>(x2);
    obj.ymax = static_cast<float>(y2);
    a.objects.push_back(obj);
  }
  return a;
}

std::string voc_directory(const std::string& root, const std::string& year) {
  std::error_code ec;
  fs::path r(root);
  if (!fs::is_directory(r, ec)) throw InputError(root + ": not a directory (data.root of voc)");
  if (fs::is_directory(r / ("VOC" + year), ec)) return (r / ("VOC" + year)).string();
  if (fs::is_directory(r / "VOCdevkit" / ("VOC" + year), ec))
    return (r / "VOCdevkit" / ("VOC" + year)).string();
  if (fs::is_directory(r / "Annotations", ec)) return r.string();
  throw InputError(root + ": not a VOCdevkit directory (expected VOC" + year +
                   "/ or Annotations/, JPEGImages/, ImageSets/Main/ below it)");
}

std::unique_ptr<Dataset> open_voc(const std::string& root, const std::string& year,
                                  const std::string& split, const Preprocess& preprocess,
                                  bool content_fingerprint) {
  const fs::path dir = voc_directory(root, year);
  const std::string set = (dir / "ImageSets" / "Main" / (split + ".txt")).string();
  std::istringstream lines(read_text(set, "image set"));
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::string id;
    ls >> id;
    if (!id.empty()) ids.push_back(id);
  }
  if (ids.empty()) throw InputError(set + ": no image ids");
  std::vector<VocAnnotation> ann;
  std::vector<int64_t> sizes;
  Sha256 h;
  h.update("mpq-voc-v1\n" + year + "\n" + split + "\n" + preprocess.to_json().dump() + "\n");
  for (const auto& id : ids) {
    const std::string xml = (dir / "Annotations" / (id + ".xml")).string();
    std::error_code ec;
    if (!fs::is_regular_file(xml, ec))
      throw InputError(set + ": lists '" + id + "' but " + xml + " does not exist");
    ann.push_back(parse_voc_annotation(xml));
    const fs::path jpg = dir / "JPEGImages" / (id + ".jpg");
    auto n = fs::file_size(jpg, ec);
    if (ec) throw InputError(jpg.string() + ": missing JPEG for image set entry '" + id + "' of " + set);
    sizes.push_back(static_cast<int64_t>(n));
    h.update(id + "\t" + std::to_string(n) + "\n" + read_text(xml, "annotation"));
    if (content_fingerprint) h.update(read_text(jpg.string(), "image"));
  }
  return std::make_unique<Voc>(dir, year, split, std::move(ids), std::move(ann), std::move(sizes),
                               preprocess, h.hex());
}

}  // namespace mpq::data
