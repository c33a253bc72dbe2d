#include "mpq/ptq/stats_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "mpq/store/h5.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::ptq {
namespace fs = std::filesystem;
namespace h5 = mpq::store::h5;
using nlohmann::json;

namespace {

bool load(const std::string& path, const std::string& key, const std::vector<int>& layers,
          std::vector<quant::SecondMoment>* out) {
  try {
    auto f = h5::File::open_read(path);
    if (h5::read_string_attr(f, f.id(), "format") != "mpq-stats" || h5::read_string_attr(f, f.id(), "key") != key)
      return false;
    auto g = h5::open_group(f, f.id(), "layers");
    std::vector<quant::SecondMoment> v;
    for (size_t i = 0; i < layers.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%04zu", i);
      auto lg = h5::open_group(f, g.id(), name);
      json a = h5::read_attrs(f, lg.id());
      if (a.value("layer", -1) != layers[i]) return false;
      quant::SecondMoment s;
      s.groups = a.value("groups", int64_t{1});
      s.d = a.value("d", int64_t{0});
      s.sampled_rows = a.value("sampled_rows", 0) != 0;
      s.rows_seen = a.value("rows_seen", int64_t{0});
      std::vector<int64_t> shape;
      auto data = h5::read_dataset<float>(f, lg.id(), "data", &shape);
      s.data = torch::from_blob(data.data(), shape, torch::kFloat32).clone();
      v.push_back(std::move(s));
    }
    *out = std::move(v);
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or partial: recompute
  }
}

void save(const std::string& path, const std::string& key, const json& description, const std::vector<int>& layers,
          const std::vector<quant::SecondMoment>& stats) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    auto f = h5::File::create(tmp);
    h5::write_attrs(f, f.id(), {{"format", "mpq-stats"}, {"key", key}, {"description", description.dump()}});
    auto g = h5::create_group(f, f.id(), "layers");
    for (size_t i = 0; i < stats.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%04zu", i);
      auto lg = h5::create_group(f, g.id(), name);
      const auto& s = stats[i];
      h5::write_attrs(f, lg.id(), {{"layer", layers[i]}, {"groups", s.groups}, {"d", s.d},
                                   {"sampled_rows", s.sampled_rows}, {"rows_seen", s.rows_seen}});
      auto t = s.data.contiguous();
      h5::write_dataset(f, lg.id(), "data", t.sizes().vec(), t.data_ptr<float>());
    }
    f.flush();
    f.close();
  }
  store::fsync_path(tmp);
  fs::rename(tmp, path);
}

}  // namespace

std::vector<quant::SecondMoment> cached_statistics(const std::string& cache_dir, const json& description,
                                                   const std::vector<int>& layers,
                                                   const std::function<std::vector<quant::SecondMoment>()>& compute,
                                                   bool* hit) {
  json full = description;
  full["layers"] = layers;
  full["format"] = "mpq-stats-v1";
  std::string key = sha256_hex(full.dump());
  if (cache_dir.empty()) {
    if (hit) *hit = false;
    return compute();
  }
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) throw InputError(cache_dir + ": cannot create statistics cache directory (" + ec.message() + ")");
  std::string path = cache_dir + "/stats-" + key.substr(0, 32) + ".h5";
  int fd = ::open((path + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (fd < 0) throw InputError(path + ".lock: cannot create lock file");
  ::flock(fd, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      ::flock(fd, LOCK_UN);
      ::close(fd);
    }
  } unlock{fd};
  std::vector<quant::SecondMoment> out;
  if (fs::exists(path) && load(path, key, layers, &out)) {
    if (hit) *hit = true;
    return out;
  }
  out = compute();
  save(path, key, full, layers, out);
  if (hit) *hit = false;
  return out;
}

}  // namespace mpq::ptq
