#include "mpq/store/image_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mpq/store/h5.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/parallel.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"

namespace mpq::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 2;
constexpr int64_t kChunkImages = 256;  // images decoded in parallel, then written as one block

class CachedImages final : public data::Dataset {
 public:
  CachedImages(std::shared_ptr<const data::Dataset> view, const std::string& path)
      : view_(std::move(view)), path_(path), shape_(view_->image_shape()) {
    auto f = h5::File::open_read(path);
    offsets_ = h5::read_dataset<int64_t>(f, f.id(), "offsets");
    shapes_ = h5::read_dataset<int64_t>(f, f.id(), "shapes");
    ok_ = h5::read_dataset<uint8_t>(f, f.id(), "ok");
    base_ = h5::contiguous_offset(f, f.id(), "pixels");
    if (static_cast<int64_t>(offsets_.size()) != view_->size() || ok_.size() != offsets_.size() ||
        shapes_.size() != 3 * offsets_.size())
      throw InputError(path + ": image cache does not match its dataset (rebuild: delete it)");
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw InputError(path + ": cannot open image cache (" + std::strerror(errno) + ")");
  }
  ~CachedImages() override {
    if (fd_ >= 0) ::close(fd_);
  }
  data::Task task() const override { return view_->task(); }
  int64_t size() const override { return static_cast<int64_t>(offsets_.size()); }
  std::vector<int64_t> image_shape() const override { return shape_; }
  int64_t num_classes() const override { return view_->num_classes(); }
  std::vector<std::string> class_names() const override { return view_->class_names(); }
  void read_image(int64_t i, data::ImageData* out) const override {
    const auto k = static_cast<size_t>(i);
    if (!ok_[k])
      throw InputError(view_->item_name(i) + ": bad image (recorded when the cache " + path_ +
                       " was built)");
    out->channels = shapes_[3 * k];
    out->height = shapes_[3 * k + 1];
    out->width = shapes_[3 * k + 2];
    size_t left = static_cast<size_t>(out->channels * out->height * out->width);
    out->pixels.resize(left);
    off_t at = static_cast<off_t>(base_ + offsets_[k]);
    auto* p = out->pixels.data();
    while (left > 0) {
      ssize_t n = ::pread(fd_, p, left, at);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        throw InputError(path_ + ": cannot read cached image " + std::to_string(i) + " (" +
                         (n == 0 ? std::string("file truncated") : std::strerror(errno)) + ")");
      }
      p += n;
      at += n;
      left -= static_cast<size_t>(n);
    }
  }
  int64_t label(int64_t i) const override { return view_->label(i); }
  data::DetectionTarget detection_target(int64_t i) const override {
    return view_->detection_target(i);
  }
  std::vector<int64_t> image_shape_of(int64_t i) const override { return view_->image_shape_of(i); }
  std::string item_name(int64_t i) const override { return view_->item_name(i); }
  const data::Preprocess& preprocess() const override { return view_->preprocess(); }
  std::string fingerprint() const override { return view_->fingerprint(); }
  std::string describe() const override { return view_->describe() + ", cached in " + path_; }
  json manifest() const override {
    json m = view_->manifest();
    m["image_cache"] = path_;
    return m;
  }

 private:
  std::shared_ptr<const data::Dataset> view_;
  std::string path_;
  std::vector<int64_t> shape_;
  std::vector<int64_t> offsets_, shapes_;
  std::vector<uint8_t> ok_;
  int64_t base_ = -1;
  int fd_ = -1;
};

bool complete(const std::string& path, const std::string& key) {
  try {
    auto f = h5::File::open_read(path);
    json a = h5::read_attrs(f, f.id());
    return a.value("format", "") == "mpq-image-cache" && a.value("key", "") == key &&
           a.value("format_version", 0) == kFormatVersion && a.value("status", "") == "complete";
  } catch (const std::exception&) {
    return false;
  }
}

void build(const data::Dataset& view, const std::string& path, const std::string& key,
           const ImageCacheOptions& opt) {
  const int64_t n = view.size();
  // Every image's size is known without decoding (image_shape_of), so the pixel array is laid
  // out up front and written block by block.
  std::vector<int64_t> offsets(static_cast<size_t>(n)), shapes(static_cast<size_t>(3 * n));
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto s = view.image_shape_of(i);
    std::copy(s.begin(), s.end(), shapes.begin() + 3 * i);
    offsets[static_cast<size_t>(i)] = total;
    total += s[0] * s[1] * s[2];
  }
  AtomicFile out(path);
  const std::string& tmp = out.tmp();
  {
    auto f = h5::File::create(tmp);
    auto pixels = h5::create_u8_dataset(f, f.id(), "pixels", {std::max<int64_t>(total, 1)});
    std::vector<uint8_t> ok(static_cast<size_t>(n), 1);
    std::vector<std::string> names(static_cast<size_t>(n));
    std::vector<data::ImageData> chunk(static_cast<size_t>(kChunkImages));
    std::vector<uint8_t> block;
    Progress bar("cache images", n);
    for (int64_t b = 0; b < n; b += kChunkImages) {
      const int64_t m = std::min(kChunkImages, n - b);
      parallel_for(m, opt.workers, [&](int64_t j) {
        const int64_t i = b + j;
        names[static_cast<size_t>(i)] = view.item_name(i);
        auto& img = chunk[static_cast<size_t>(j)];
        const int64_t* s = shapes.data() + 3 * i;
        try {
          view.read_image(i, &img);
          MPQ_ASSERT(img.channels == s[0] && img.height == s[1] && img.width == s[2],
                     "an image decoded to another size than its dataset announced");
        } catch (const InputError&) {
          if (!opt.skip_bad) throw;
          ok[static_cast<size_t>(i)] = 0;
          img.pixels.assign(static_cast<size_t>(s[0] * s[1] * s[2]), 0);
        }
      });
      const int64_t first = offsets[static_cast<size_t>(b)];
      const int64_t last = b + m < n ? offsets[static_cast<size_t>(b + m)] : total;
      block.resize(static_cast<size_t>(last - first));
      for (int64_t j = 0; j < m; ++j) {
        const auto& px = chunk[static_cast<size_t>(j)].pixels;
        std::copy(px.begin(), px.end(),
                  block.begin() + (offsets[static_cast<size_t>(b + j)] - first));
      }
      h5::write_u8_rows(f, pixels, {std::max<int64_t>(total, 1)}, first, last - first,
                        block.data());
      bar.advance(m);
    }
    bar.finish();
    pixels.reset();
    h5::write_dataset(f, f.id(), "offsets", {n}, offsets.data());
    h5::write_dataset(f, f.id(), "shapes", {n, 3}, shapes.data());
    h5::write_dataset(f, f.id(), "ok", {n}, ok.data());
    h5::write_string_list_dataset(f, f.id(), "names", names);
    h5::write_attrs(f, f.id(),
                    {{"format", "mpq-image-cache"},
                     {"format_version", kFormatVersion},
                     {"key", key},
                     {"fingerprint", view.fingerprint()},
                     {"description", view.describe()},
                     {"preprocessing", view.preprocess().to_json().dump()},
                     {"count", n}});
    h5::write_attr(f, f.id(), "status", "complete");
    f.flush();
    f.close();
    out.commit();
  }
}

}  // namespace

std::unique_ptr<data::Dataset> cached_images(std::shared_ptr<const data::Dataset> view,
                                             const std::string& cache_dir,
                                             const ImageCacheOptions& options, bool* built) {
  if (built) *built = false;
  const std::string key = sha256_hex("mpq-image-cache-v2\n" + view->fingerprint()).substr(0, 32);
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec)
    throw InputError(cache_dir + ": cannot create image cache directory (" + ec.message() + ")");
  const std::string path = cache_dir + "/images-" + key + ".h5";
  if (!complete(path, key)) {
    const std::string lock = cache_dir + "/images-" + key + ".lock";
    FileLock held(lock);  // another process building the same cache: wait for it
    if (!complete(path, key)) {
      build(*view, path, key, options);
      if (built) *built = true;
    }
  }
  return std::make_unique<CachedImages>(std::move(view), path);
}

}  // namespace mpq::store
