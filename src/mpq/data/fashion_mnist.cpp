#include "mpq/data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::data {

const char* split_name(Split s) {
  return s == Split::kTrain ? "train" : "test";
}

namespace {

void require_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw InputError(path + ": missing (" + std::strerror(errno) +
                     "); install Debian's dataset-fashion-mnist or point data.root at a copy");
}

// Whole decompressed contents of a .gz file.
std::string read_gz(const std::string& path) {
  require_file(path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw InputError(path + ": cannot open for reading");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw InputError(path + ": not a readable gzip file (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  // zlib reports a stream cut short only through gzerror after the last read.
  int err = 0;
  const char* msg = gzerror(f, &err);
  std::string emsg = msg ? msg : "";
  gzclose(f);
  if (err != Z_OK && err != Z_STREAM_END)
    throw InputError(path + ": corrupt or truncated gzip data (" + emsg + ")");
  return out;
}

uint32_t be32(const std::string& s, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + off);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

const char* const kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

class FashionMnist final : public Dataset {
 public:
  FashionMnist(std::string pixels, std::vector<int64_t> labels, Preprocess pre,
               std::string fingerprint, std::string description, std::string split)
      : pixels_(std::move(pixels)),
        labels_(std::move(labels)),
        pre_(std::move(pre)),
        fingerprint_(std::move(fingerprint)),
        description_(std::move(description)),
        split_(std::move(split)) {
    int h = 0, w = 0;
    output_size(pre_.geometry(), 28, 28, &h, &w);
    shape_ = {pre_.channels(), h, w};
    identity_ = pre_.resize == 0 && pre_.crop == 0 && pre_.color == ColorMode::kGray;
  }

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  std::vector<int64_t> image_shape() const override { return shape_; }
  int64_t num_classes() const override { return 10; }
  std::vector<std::string> class_names() const override {
    return {std::begin(kClassNames), std::end(kClassNames)};
  }
  void read_image(int64_t i, ImageData* o) const override {
    o->channels = shape_[0];
    o->height = shape_[1];
    o->width = shape_[2];
    o->pixels.resize(static_cast<size_t>(shape_[0] * shape_[1] * shape_[2]));
    uint8_t* out = o->pixels.data();
    const char* src = pixels_.data() + static_cast<size_t>(i) * 784;
    if (identity_) {
      std::memcpy(out, src, 784);
      return;
    }
    Image img{28, 28, 1, std::vector<uint8_t>(src, src + 784)};
    if (pre_.color == ColorMode::kRgb) {  // PIL's L -> RGB: replication
      Image rgb{28, 28, 3, std::vector<uint8_t>(784 * 3)};
      for (size_t p = 0; p < 784; ++p)
        rgb.pixels[3 * p] = rgb.pixels[3 * p + 1] = rgb.pixels[3 * p + 2] = img.pixels[p];
      img = std::move(rgb);
    }
    resize_crop(img, pre_.geometry(), out);
  }
  int64_t label(int64_t i) const override { return labels_[static_cast<size_t>(i)]; }
  const Preprocess& preprocess() const override { return pre_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override { return description_; }
  nlohmann::json manifest() const override {
    return {{"dataset", "fashion-mnist"},
            {"split", split_},
            {"images", size()},
            {"label_mapping", "idx label file (0-9, Fashion-MNIST class order)"}};
  }

 private:
  std::string pixels_;            // n * 28 * 28 uint8
  std::vector<int64_t> labels_;  // [n]
  Preprocess pre_;
  std::vector<int64_t> shape_;
  bool identity_ = true;
  std::string fingerprint_, description_, split_;
};

}  // namespace

int64_t fashion_mnist_size(const std::string& root, Split split) {
  std::string path =
      root + "/" + (split == Split::kTrain ? "train" : "t10k") + "-labels-idx1-ubyte.gz";
  require_file(path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw InputError(path + ": cannot open for reading");
  unsigned char h[8];
  int n = gzread(f, h, 8);
  gzclose(f);
  std::string hs(reinterpret_cast<char*>(h), n > 0 ? static_cast<size_t>(n) : 0);
  if (n != 8 || be32(hs, 0) != 2049)
    throw InputError(path + ": not an idx1 label file (expected magic 2049)");
  return be32(hs, 4);
}

std::unique_ptr<Dataset> load_fashion_mnist(const std::string& root, Split split, int64_t limit,
                                            const Preprocess& preprocess) {
  std::string prefix = root + "/" + (split == Split::kTrain ? "train" : "t10k");
  std::string img_path = prefix + "-images-idx3-ubyte.gz";
  std::string lbl_path = prefix + "-labels-idx1-ubyte.gz";
  std::string img = read_gz(img_path);
  std::string lbl = read_gz(lbl_path);

  if (img.size() < 16 || be32(img, 0) != 2051)
    throw InputError(img_path + ": not an idx3 image file (expected magic 2051)");
  if (lbl.size() < 8 || be32(lbl, 0) != 2049)
    throw InputError(lbl_path + ": not an idx1 label file (expected magic 2049)");
  uint32_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (rows != 28 || cols != 28)
    throw InputError(img_path + ": expected 28x28 images, header says " + std::to_string(rows) +
                     "x" + std::to_string(cols));
  size_t want_img = 16 + size_t(n) * 28 * 28;
  if (img.size() != want_img)
    throw InputError(img_path + ": truncated or padded: header announces " + std::to_string(n) +
                     " images (" + std::to_string(want_img) + " bytes), file has " +
                     std::to_string(img.size()) + " bytes");
  uint32_t nl = be32(lbl, 4);
  if (nl != n)
    throw InputError(lbl_path + ": holds " + std::to_string(nl) + " labels but " + img_path +
                     " holds " + std::to_string(n) + " images");
  if (lbl.size() != 8 + size_t(n))
    throw InputError(lbl_path + ": truncated or padded: header announces " + std::to_string(n) +
                     " labels, file has " + std::to_string(lbl.size() - 8) + " label bytes");

  int64_t keep = (limit > 0 && limit < int64_t(n)) ? limit : int64_t(n);
  std::vector<int64_t> labels(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i) {
    auto v = static_cast<unsigned char>(lbl[8 + size_t(i)]);
    if (v > 9)
      throw InputError(lbl_path + ": label " + std::to_string(v) + " at index " +
                       std::to_string(i) + " is outside [0, 9]");
    labels[static_cast<size_t>(i)] = v;
  }

  Sha256 h;
  h.update("fashion-mnist/v2/");
  h.update(split_name(split));
  h.update("/limit=" + std::to_string(keep) + "/" + preprocess.to_json().dump() + "/");
  h.update(img);
  h.update(lbl);
  std::string desc = std::string("fashion-mnist ") + split_name(split) + " (" +
                     std::to_string(keep) + " images) at " + root;
  return std::make_unique<FashionMnist>(img.substr(16, static_cast<size_t>(keep) * 784),
                                        std::move(labels), preprocess, h.hex(), desc,
                                        split_name(split));
}

}  // namespace mpq::data
