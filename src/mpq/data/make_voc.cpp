#include "mpq/data/make_voc.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "mpq/data/fashion_mnist.h"
#include "mpq/data/voc.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/progress.h"

namespace mpq::data {
namespace fs = std::filesystem;

namespace {

struct Placed {
  int label = 0;
  int x0 = 0, y0 = 0, w = 0, h = 0;  // full extent on the canvas (may leave it)
  cv::Mat alpha;                     // CV_32F [h, w]
  int64_t pixels = 0;                // opaque pixels of the whole item
  bool truncated = false;
};

std::string id_of(int64_t n) {
  char b[24];
  std::snprintf(b, sizeof b, "%06lld", static_cast<long long>(n));
  return b;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream o(p);
  if (!o) throw InputError(p.string() + ": cannot write");
  o << text;
  if (!o) throw InputError(p.string() + ": write failed");
}

// One canvas with its objects; appends "<object>" XML to `xml`.
cv::Mat compose(const Dataset& items, std::mt19937_64& rng, const MakeVocOptions& o, int W, int H,
                std::string* xml) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Smooth background: a 4x4 random colour grid, upsampled, plus a little noise.
  cv::Mat grid(4, 4, CV_32FC3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      grid.at<cv::Vec3f>(y, x) =
          cv::Vec3f(static_cast<float>(40 + 150 * u(rng)), static_cast<float>(40 + 150 * u(rng)),
                    static_cast<float>(40 + 150 * u(rng)));
  cv::Mat canvas;
  cv::resize(grid, canvas, cv::Size(W, H), 0, 0, cv::INTER_CUBIC);
  cv::Mat noise(H, W, CV_32FC3);
  cv::randn(noise, 0.0, 6.0);  // cv RNG seeded below from rng for determinism
  canvas += noise;

  // Fashion-MNIST classes used, and their VOC shape index.
  static const int kShapes[5] = {1, 3, 8, 9, 5};  // trouser, dress, bag, ankle boot, sandal
  std::uniform_int_distribution<int64_t> pick(0, items.size() - 1);
  const int count = 1 + static_cast<int>(u(rng) * o.max_objects);
  std::vector<Placed> placed;
  cv::Mat owner(H, W, CV_32S, cv::Scalar(-1));  // which object each pixel shows
  ImageData item;
  for (int k = 0; k < count; ++k) {
    int64_t idx = pick(rng);
    int shape = -1;
    while (shape < 0) {  // draw until the item is of one of the five classes
      for (int k5 = 0; k5 < 5; ++k5)
        if (items.label(idx) == kShapes[k5]) shape = k5;
      if (shape < 0) idx = pick(rng);
    }
    items.read_image(idx, &item);
    const int tint = std::min(3, static_cast<int>(u(rng) * 4));
    Placed p;
    p.label = 5 * tint + shape;
    const double side = o.min_object + (o.max_object - o.min_object) * u(rng);
    const double aspect = 0.8 + 0.45 * u(rng);
    p.w = std::max(4, static_cast<int>(side * std::sqrt(aspect)));
    p.h = std::max(4, static_cast<int>(side / std::sqrt(aspect)));
    // A third of the item may leave the canvas on any side (truncation).
    p.x0 = static_cast<int>(-p.w / 3 + u(rng) * (W - p.w / 3.0 * 2 + p.w / 3.0));
    p.y0 = static_cast<int>(-p.h / 3 + u(rng) * (H - p.h / 3.0 * 2 + p.h / 3.0));
    cv::Mat src(28, 28, CV_8U, item.pixels.data());
    cv::Mat scaled;
    cv::resize(src, scaled, cv::Size(p.w, p.h), 0, 0, cv::INTER_LINEAR);
    scaled.convertTo(p.alpha, CV_32F, 1.0 / 255.0);
    // RGB tints: red, green, blue, yellow, with a little jitter.
    static const float kTints[4][3] = {{230, 40, 40}, {40, 210, 60}, {50, 70, 235}, {235, 220, 40}};
    const cv::Vec3f colour(kTints[tint][0] + static_cast<float>(20 * (u(rng) - 0.5)),
                           kTints[tint][1] + static_cast<float>(20 * (u(rng) - 0.5)),
                           kTints[tint][2] + static_cast<float>(20 * (u(rng) - 0.5)));
    for (int y = 0; y < p.h; ++y)
      for (int x = 0; x < p.w; ++x) {
        const float v = p.alpha.at<float>(y, x);
        const float a = std::min(1.0f, 1.5f * v);
        if (v > 0.25f) ++p.pixels;
        const int cx = p.x0 + x, cy = p.y0 + y;
        if (cx < 0 || cy < 0 || cx >= W || cy >= H) {
          if (v > 0.25f) p.truncated = true;
          continue;
        }
        cv::Vec3f& px = canvas.at<cv::Vec3f>(cy, cx);
        px = px * (1.0f - a) + colour * (0.4f + 0.6f * v) * a;
        if (v > 0.25f) owner.at<int>(cy, cx) = static_cast<int>(placed.size());
      }
    placed.push_back(std::move(p));
  }
  // Boxes of what is visible in the end.
  for (size_t k = 0; k < placed.size(); ++k) {
    const Placed& p = placed[k];
    int x1 = W, y1 = H, x2 = -1, y2 = -1;
    int64_t visible = 0;
    for (int y = std::max(0, p.y0); y < std::min(H, p.y0 + p.h); ++y)
      for (int x = std::max(0, p.x0); x < std::min(W, p.x0 + p.w); ++x)
        if (owner.at<int>(y, x) == static_cast<int>(k)) {
          ++visible;
          x1 = std::min(x1, x);
          y1 = std::min(y1, y);
          x2 = std::max(x2, x);
          y2 = std::max(y2, y);
        }
    if (visible == 0) continue;
    const bool difficult = std::max(x2 - x1 + 1, y2 - y1 + 1) < o.difficult_side ||
                           static_cast<double>(visible) < 0.4 * static_cast<double>(p.pixels);
    char b[512];
    std::snprintf(b, sizeof b,
                  "  <object>\n    <name>%s</name>\n    <pose>Unspecified</pose>\n"
                  "    <truncated>%d</truncated>\n    <difficult>%d</difficult>\n"
                  "    <bndbox>\n      <xmin>%d</xmin>\n      <ymin>%d</ymin>\n"
                  "      <xmax>%d</xmax>\n      <ymax>%d</ymax>\n    </bndbox>\n  </object>\n",
                  voc_classes()[static_cast<size_t>(p.label)], p.truncated ? 1 : 0,
                  difficult ? 1 : 0, x1 + 1, y1 + 1, x2 + 1, y2 + 1);
    *xml += b;
  }
  cv::Mat out;
  canvas.convertTo(out, CV_8UC3);  // saturating
  return out;
}

}  // namespace

std::string make_voc(const std::string& out, const MakeVocOptions& o) {
  if (o.min_size < 32 || o.max_size < o.min_size || o.max_objects < 1 || o.min_object < 4 ||
      o.max_object < o.min_object || o.trainval < 2 || o.test < 1)
    throw ConfigError("make-voc: inconsistent options (sizes, object sizes, counts)");
  const std::string root =
      o.fashion_mnist_root.empty() ? kFashionMnistDefaultRoot : o.fashion_mnist_root;
  auto train_items = load_fashion_mnist(root, Split::kTrain);
  auto test_items = load_fashion_mnist(root, Split::kTest);
  const fs::path dir = fs::path(out) / "VOCdevkit" / "VOC2007";
  std::error_code ec;
  for (const char* sub : {"JPEGImages", "Annotations", "ImageSets/Main"}) {
    fs::create_directories(dir / sub, ec);
    if (ec) throw InputError((dir / sub).string() + ": cannot create (" + ec.message() + ")");
  }
  std::mt19937_64 rng(o.seed);
  cv::theRNG().state = o.seed * 0x9E3779B97F4A7C15ull + 1;
  std::string trainval, train, val, test;
  const int64_t total = o.trainval + o.test;
  Progress bar("make-voc", total);
  for (int64_t n = 1; n <= total; ++n) {
    const bool is_test = n > o.trainval;
    std::uniform_int_distribution<int> side(o.min_size, o.max_size);
    const int W = side(rng), H = side(rng);
    std::string objects;
    cv::Mat img = compose(is_test ? *test_items : *train_items, rng, o, W, H, &objects);
    const std::string id = id_of(n);
    cv::Mat bgr;
    cv::cvtColor(img, bgr, cv::COLOR_RGB2BGR);
    const std::string jpg = (dir / "JPEGImages" / (id + ".jpg")).string();
    if (!cv::imwrite(jpg, bgr, {cv::IMWRITE_JPEG_QUALITY, 90}))
      throw InputError(jpg + ": cannot write JPEG");
    write_text(dir / "Annotations" / (id + ".xml"),
               "<annotation>\n  <folder>VOC2007</folder>\n  <filename>" + id +
                   ".jpg</filename>\n  <source>\n    <database>mpq synthetic VOC (Fashion-MNIST "
                   "items)</database>\n  </source>\n  <size>\n    <width>" +
                   std::to_string(W) + "</width>\n    <height>" + std::to_string(H) +
                   "</height>\n    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n" +
                   objects + "</annotation>\n");
    if (is_test) {
      test += id + "\n";
    } else {
      trainval += id + "\n";
      (n % 2 ? train : val) += id + "\n";
    }
    bar.advance(1);
  }
  bar.finish();
  write_text(dir / "ImageSets" / "Main" / "trainval.txt", trainval);
  write_text(dir / "ImageSets" / "Main" / "train.txt", train);
  write_text(dir / "ImageSets" / "Main" / "val.txt", val);
  write_text(dir / "ImageSets" / "Main" / "test.txt", test);
  return dir.string();
}

nlohmann::json synthetic_voc_identity() {
  MakeVocOptions o;
  return {{"generator", "mpq make-voc v2"},
          {"trainval", o.trainval},
          {"test", o.test},
          {"min_size", o.min_size},
          {"max_size", o.max_size},
          {"max_objects", o.max_objects},
          {"min_object", o.min_object},
          {"max_object", o.max_object},
          {"difficult_side", o.difficult_side},
          {"seed", o.seed}};
}

std::string default_synthetic_voc(const std::string& fashion_mnist_root) {
  // The default detector's data: generated once, deterministically, into the results tree.
  static const std::string dir = "results/data/voc-fmnist";
  std::error_code ec;
  if (!fs::exists(dir + "/VOCdevkit/VOC2007/ImageSets/Main/test.txt", ec)) {
    const std::string lock = "results/data/voc-fmnist.lock";
    fs::create_directories("results/data", ec);
    FileLock held(lock);
    if (!fs::exists(dir + "/VOCdevkit/VOC2007/ImageSets/Main/test.txt", ec)) {
      info("generating the synthetic VOC dataset of the default detector in " + dir);
      MakeVocOptions o;
      o.fashion_mnist_root = fashion_mnist_root;
      AtomicFile out(dir);  // a killed generator leaves no half dataset at `dir`
      make_voc(out.tmp(), o);
      out.commit();
    }
  }
  return dir + "/VOCdevkit";
}

}  // namespace mpq::data
