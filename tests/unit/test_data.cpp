#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "mpq/data/calibration.h"
#include "mpq/data/fashion_mnist.h"
#include "mpq/data/loader.h"
#include "mpq/util/error.h"
#include "tolerances.h"
#include "torch_catch.h"

namespace tol = mpq::test::tol;

namespace fs = std::filesystem;
using mpq::InputError;

namespace {

void put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// A small idx dataset: n images whose pixel values are i + j, labels i % 10.
struct IdxDir {
  std::string dir;
  explicit IdxDir(const std::string& name, uint32_t n = 12) : dir("/tmp/mpq_test_idx_" + name) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* split : {"train", "t10k"}) {
      std::string img, lbl;
      put32(img, 2051);
      put32(img, n);
      put32(img, 28);
      put32(img, 28);
      for (uint32_t i = 0; i < n; ++i)
        for (int j = 0; j < 784; ++j)
          img.push_back(static_cast<char>((i + static_cast<uint32_t>(j)) % 256));
      put32(lbl, 2049);
      put32(lbl, n);
      for (uint32_t i = 0; i < n; ++i) lbl.push_back(static_cast<char>(i % 10));
      write_gz(images(split), img);
      write_gz(labels(split), lbl);
    }
  }
  std::string images(const std::string& split) const {
    return dir + "/" + split + "-images-idx3-ubyte.gz";
  }
  std::string labels(const std::string& split) const {
    return dir + "/" + split + "-labels-idx1-ubyte.gz";
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("idx files parse into normalized tensors with labels", "[data]") {
  IdxDir d("ok");
  auto ds = mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest);
  REQUIRE(ds->size() == 12);
  auto batch = mpq::data::load_batch(*ds, {0, 3});
  torch::Tensor x = batch.images, y = batch.labels;
  CHECK(x.sizes() == torch::IntArrayRef({2, 1, 28, 28}));
  CHECK(y[1].item<int64_t>() == 3);
  // pixel (image 3, row 0, col 5) = 8 -> (8/255 - mean)/std
  double expect = (8.0 / 255.0 - mpq::data::kFashionMnistMean) / mpq::data::kFashionMnistStd;
  CHECK(x[1][0][0][5].item<float>() == Approx(expect).epsilon(tol::kFloat32));
  auto limited = mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTrain, 5);
  CHECK(limited->size() == 5);
  CHECK(limited->fingerprint() != ds->fingerprint());
  CHECK(mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest)->fingerprint() ==
        ds->fingerprint());
}

TEST_CASE("truncated, malformed and missing idx files are rejected with the file named", "[data]") {
  SECTION("missing file") {
    IdxDir d("missing");
    fs::remove(d.labels("t10k"));
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find(d.labels("t10k") + ": missing") == 0);
  }
  SECTION("missing directory") {
    auto m = message_of(
        [&] { mpq::data::load_fashion_mnist("/nonexistent/fmnist", mpq::data::Split::kTest); });
    CHECK(m.find("/nonexistent/fmnist/t10k-images-idx3-ubyte.gz: missing") == 0);
  }
  SECTION("image payload shorter than the header says") {
    IdxDir d("short");
    std::string img;
    put32(img, 2051);
    put32(img, 12);
    put32(img, 28);
    put32(img, 28);
    img += std::string(784 * 5, '\1');
    write_gz(d.images("t10k"), img);
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find(d.images("t10k") + ": truncated or padded") == 0);
  }
  SECTION("gzip stream cut in the middle") {
    IdxDir d("cut");
    auto size = fs::file_size(d.images("t10k"));
    fs::resize_file(d.images("t10k"), size / 2);
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find(d.images("t10k")) == 0);
    CHECK((m.find("truncated") != std::string::npos || m.find("corrupt") != std::string::npos));
  }
  SECTION("wrong magic") {
    IdxDir d("magic");
    write_gz(d.labels("t10k"), std::string("\0\0\x08\x03\0\0\0\x0c", 8) + std::string(12, '\0'));
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m == d.labels("t10k") + ": not an idx1 label file (expected magic 2049)");
  }
  SECTION("label count differs from image count") {
    IdxDir d("count");
    std::string lbl;
    put32(lbl, 2049);
    put32(lbl, 11);
    lbl += std::string(11, '\1');
    write_gz(d.labels("t10k"), lbl);
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find("holds 11 labels but") != std::string::npos);
  }
  SECTION("label out of range") {
    IdxDir d("range");
    std::string lbl;
    put32(lbl, 2049);
    put32(lbl, 12);
    lbl += std::string(11, '\1') + std::string(1, '\x0b');
    write_gz(d.labels("t10k"), lbl);
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find("label 11 at index 11 is outside [0, 9]") != std::string::npos);
  }
  SECTION("not gzip at all") {
    IdxDir d("plain");
    {
      std::ofstream o(d.images("t10k"));
      o << "hello, this is not an idx file";
    }
    auto m = message_of([&] { mpq::data::load_fashion_mnist(d.dir, mpq::data::Split::kTest); });
    CHECK(m.find(d.images("t10k")) == 0);
  }
}

TEST_CASE("the documented normalization constants are the training-set pixel statistics",
          "[data][slow]") {
  auto ds =
      mpq::data::load_fashion_mnist(mpq::data::kFashionMnistDefaultRoot, mpq::data::Split::kTrain);
  REQUIRE(ds->size() == 60000);
  auto batch = mpq::data::load_batch(*ds, mpq::data::index_range(0, 60000));
  torch::Tensor x = batch.images, y = batch.labels;
  auto pixels = x.to(torch::kFloat64) * mpq::data::kFashionMnistStd + mpq::data::kFashionMnistMean;
  // The constants are the published 4-digit values (0.2860, 0.3530): half a unit of the 4th digit.
  constexpr double kPublishedDigits = 5e-4;
  CHECK(pixels.mean().item<double>() ==
        Approx(mpq::data::kFashionMnistMean).margin(kPublishedDigits));
  CHECK(pixels.std().item<double>() ==
        Approx(mpq::data::kFashionMnistStd).margin(kPublishedDigits));
  CHECK(y.bincount().min().item<int64_t>() == 6000);  // balanced classes
}

TEST_CASE("calibration indices are seeded, distinct, sorted and in range", "[data]") {
  auto a = mpq::data::calibration_indices(1000, 64, 7);
  auto b = mpq::data::calibration_indices(1000, 64, 7);
  auto c = mpq::data::calibration_indices(1000, 64, 8);
  CHECK(a == b);
  CHECK(a != c);
  REQUIRE(a.size() == 64);
  for (size_t i = 1; i < a.size(); ++i) CHECK(a[i - 1] < a[i]);
  CHECK(a.front() >= 0);
  CHECK(a.back() < 1000);
  CHECK(mpq::data::calibration_indices(10, 50, 1).size() == 10);  // clamped to the dataset
  CHECK(mpq::data::calibration_indices(0, 5, 1).empty());
  // Pinned values: the sampler must not change silently (stored results record these indices
  // and a re-run must draw the same images).
  CHECK(mpq::data::calibration_indices(60000, 4, 0) ==
        std::vector<int64_t>({3319, 5694, 5700, 38291}));
}
