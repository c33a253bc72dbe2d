#include <cmath>
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "torch_catch.h"

namespace fs = std::filesystem;
using mpq::store::LayerRecord;
using mpq::store::TrialRecord;
using nlohmann::json;

namespace {

TrialRecord sample_record() {
  TrialRecord r;
  r.trial_id = std::string(64, 'a');
  r.config = {{"weights", {{"bits", 3}, {"method", "rtn"}}}, {"seed", 1}};
  r.manifest = {{"git_commit", "abc"}, {"git_dirty", true}, {"threads", 2}, {"host", "h"}};
  r.calibration_indices = {3, 17, 99};
  r.metrics = {{"top1", 0.875}, {"kl", 0.0123}, {"n_eval", 100}};
  LayerRecord L;
  L.index = 0;
  L.d = 3;
  L.max_points = 2;
  L.attrs = {{"name", "conv1"}, {"bits", 3}, {"quantized", true}};
  L.points_per_channel = {1, 2};
  L.codes = {1, -3, 0, 2, 2, 2, 0, 0, -1};
  L.scales = {0.5f, 0.25f, 0.01f};
  L.point_channel = {0, 1, 1};
  L.weight_error = {0.1f, NAN, 0.3f, 0.02f};
  L.grant_order = {-1, -1, -1, 0};
  r.layers.push_back(L);
  LayerRecord fp;
  fp.index = 1;
  fp.d = 4;
  fp.attrs = {{"name", "fc"}, {"quantized", false}};
  fp.points_per_channel = {0, 0};
  r.layers.push_back(fp);
  return r;
}

}  // namespace

TEST_CASE("a trial record survives an HDF5 round trip", "[store]") {
  std::string dir = mpq::test::fresh_dir("store_roundtrip");
  std::string path = dir + "/t.h5";
  auto r = sample_record();
  mpq::store::write_trial(path, r);
  auto back = mpq::store::read_trial(path);
  CHECK(back.trial_id == r.trial_id);
  CHECK(back.config == r.config);
  CHECK(back.manifest["git_commit"] == "abc");
  CHECK(back.manifest["git_dirty"] == 1);  // booleans are stored as int8
  CHECK(back.manifest["threads"] == 2);
  CHECK(back.calibration_indices == r.calibration_indices);
  CHECK(back.metrics["top1"].get<double>() == 0.875);
  CHECK(back.metrics["n_eval"] == 100);
  REQUIRE(back.layers.size() == 2);
  const auto& L = back.layers[0];
  CHECK(L.attrs["name"] == "conv1");
  CHECK(L.points_per_channel == r.layers[0].points_per_channel);
  CHECK(L.codes == r.layers[0].codes);
  CHECK(L.scales == r.layers[0].scales);
  CHECK(L.point_channel == r.layers[0].point_channel);
  CHECK(L.grant_order == r.layers[0].grant_order);
  REQUIRE(L.weight_error.size() == 4);
  CHECK(std::isnan(L.weight_error[1]));
  CHECK(L.weight_error[3] == 0.02f);
  CHECK(back.layers[1].codes.empty());
  // Nothing but the final file is left in the directory.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 1);
}

TEST_CASE("truncated or incomplete trial files are detected", "[store]") {
  std::string dir = mpq::test::fresh_dir("store_bad");
  std::string path = dir + "/t.h5";
  mpq::store::write_trial(path, sample_record());
  REQUIRE(mpq::store::validate_trial(path));

  SECTION("truncated") {
    fs::resize_file(path, fs::file_size(path) / 2);
    std::string why;
    CHECK_FALSE(mpq::store::validate_trial(path, &why));
    CHECK(why.find(path) == 0);
  }
  SECTION("garbage") {
    {
      std::ofstream o(path, std::ios::trunc);
      o << "not hdf5";
    }
    std::string why;
    CHECK_FALSE(mpq::store::validate_trial(path, &why));
    CHECK(why == path + ": not a readable HDF5 file (missing, truncated or corrupt)");
  }
  SECTION("missing") {
    CHECK_THROWS_AS(mpq::store::read_trial(dir + "/nope.h5"), mpq::InputError);
  }
}

TEST_CASE("writing into a missing directory is a config error and leaves nothing", "[store]") {
  CHECK_THROWS_AS(mpq::store::write_trial("/tmp/mpq_no_such_dir/x/t.h5", sample_record()),
                  mpq::ConfigError);
  CHECK_FALSE(fs::exists("/tmp/mpq_no_such_dir/x"));
}

TEST_CASE("atomic files: complete or absent, temporaries removed on every error", "[store]") {
  namespace fs = std::filesystem;
  const std::string d = "/tmp/mpq_test_atomic";
  fs::remove_all(d);
  fs::create_directories(d);
  const std::string path = d + "/out.txt";
  SECTION("commit puts the content at the final name, nothing else remains") {
    mpq::write_file_atomic(path, "first\n");
    mpq::write_file_atomic(path, "second\n");  // replaces
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    CHECK(line == "second");
    CHECK(std::distance(fs::directory_iterator(d), fs::directory_iterator()) == 1);
  }
  SECTION("an exception before commit leaves neither the file nor the temporary") {
    try {
      mpq::AtomicFile out(path);
      std::ofstream(out.tmp()) << "half";
      throw std::runtime_error("writer failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(fs::is_empty(d));
  }
  SECTION("a directory replaces the old one whole") {
    const std::string dir = d + "/report";
    for (const char* text : {"old", "new"}) {
      mpq::AtomicFile out(dir);
      fs::create_directories(out.tmp() + "/sub");
      std::ofstream(out.tmp() + "/sub/f.txt") << text;
      if (std::string(text) == "old") std::ofstream(out.tmp() + "/only_old.txt") << "x";
      out.commit();
    }
    std::ifstream in(dir + "/sub/f.txt");
    std::string s;
    in >> s;
    CHECK(s == "new");
    CHECK_FALSE(fs::exists(dir + "/only_old.txt"));
    CHECK(std::distance(fs::directory_iterator(d), fs::directory_iterator()) == 1);
  }
  SECTION("failures name the file and leave nothing") {
    CHECK_THROWS_WITH(mpq::write_file_atomic(d + "/missing/dir/x.txt", "x"),
                      Catch::Contains("missing/dir/x.txt: cannot write"));
    mpq::AtomicFile nothing(path);
    CHECK_THROWS_WITH(nothing.commit(), Catch::Contains("out.txt: nothing was written"));
    CHECK_THROWS_WITH(mpq::fsync_path(d + "/absent"), Catch::Contains("absent: cannot open"));
    CHECK(fs::is_empty(d));
  }
  SECTION("a temporary's name tells a dead writer of this host from live or foreign ones") {
    mpq::AtomicFile out(path);
    const std::string mine = fs::path(out.tmp()).filename().string();
    CHECK_FALSE(mpq::temp_writer_is_dead(mine));  // this process
    const std::string host =
        mine.substr(mine.find(".tmp.") + 5, mine.rfind('.') - mine.find(".tmp.") - 5);
    // pid_max on Linux is at most 2^22: a larger pid never exists.
    CHECK(mpq::temp_writer_is_dead("x.h5.tmp." + host + ".99999999"));
    CHECK_FALSE(mpq::temp_writer_is_dead("x.h5.tmp.other.example.99999999"));
    CHECK_FALSE(mpq::temp_writer_is_dead("x.h5"));
    CHECK_FALSE(mpq::temp_writer_is_dead("x.h5.tmp." + host + ".12ab"));
  }
  fs::remove_all(d);
}

TEST_CASE("sweep records are read through the directory, errors named, not swallowed", "[store]") {
  const std::string d = "/tmp/mpq_test_sweep_records";
  fs::remove_all(d);
  mpq::store::SweepDir dir(d);
  fs::create_directories(d);
  CHECK(dir.read_sweep_document() == json::object());  // none yet
  CHECK(dir.read_fp_checks() == json::array());
  CHECK(dir.max_attempts() == 2);
  dir.init(json{{"name", "s"}, {"run", {{"max_attempts", 5}}}}, "f", false);
  CHECK(dir.read_sweep_document()["name"] == "s");
  CHECK(dir.max_attempts() == 5);
  mpq::write_file_atomic(dir.fp_check_path(), "[{\"outcome\": \"pass\"}]\n");
  CHECK(dir.read_fp_checks().size() == 1);
  mpq::write_file_atomic(dir.fp_check_path(), "{\"outcome\": \"pass\"}\n");
  CHECK_THROWS_WITH(dir.read_fp_checks(),
                    Catch::Contains("fp_check.json: expected a JSON array of FP checks"));
  mpq::write_file_atomic(dir.fp_check_path(), "[{\"outc");
  CHECK_THROWS_WITH(dir.read_fp_checks(), Catch::Contains("fp_check.json: unreadable"));
  mpq::write_file_atomic(dir.sweep_record_path(), "{\"sweep\": 3}");
  CHECK_THROWS_WITH(dir.read_sweep_document(), Catch::Contains("sweep.json: unreadable"));
  CHECK_THROWS_AS(dir.max_attempts(), mpq::InputError);
  fs::remove_all(d);
}
