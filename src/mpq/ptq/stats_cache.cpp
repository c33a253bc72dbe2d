#include "mpq/ptq/stats_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "mpq/store/h5.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/sha256.h"

namespace mpq::ptq {
namespace fs = std::filesystem;
namespace h5 = mpq::store::h5;
using nlohmann::json;

namespace {

std::string layer_file(const std::string& dir, int layer) {
  char name[32];
  std::snprintf(name, sizeof name, "layer-%04d.h5", layer);
  return dir + "/" + name;
}

bool load(const std::string& path, const std::string& key, int layer, quant::SecondMoment* out) {
  try {
    auto f = h5::File::open_read(path);
    json a = h5::read_attrs(f, f.id());
    if (a.value("format", "") != "mpq-stats" || a.value("key", "") != key ||
        a.value("layer", -1) != layer)
      return false;
    quant::SecondMoment s;
    s.groups = a.value("groups", int64_t{1});
    s.d = a.value("d", int64_t{0});
    s.sampled_rows = a.value("sampled_rows", 0) != 0;
    s.rows_seen = a.value("rows_seen", int64_t{0});
    std::vector<int64_t> shape;
    auto data = h5::read_dataset<float>(f, f.id(), "data", &shape);
    s.data = torch::from_blob(data.data(), shape, torch::kFloat32).clone();
    *out = std::move(s);
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or partial: recompute
  }
}

void save(const std::string& path, const std::string& key, int layer,
          const quant::SecondMoment& s) {
  AtomicFile out(path);
  const std::string& tmp = out.tmp();
  {
    auto f = h5::File::create(tmp);
    h5::write_attrs(f, f.id(),
                    {{"format", "mpq-stats"},
                     {"key", key},
                     {"layer", layer},
                     {"groups", s.groups},
                     {"d", s.d},
                     {"sampled_rows", s.sampled_rows},
                     {"rows_seen", s.rows_seen}});
    auto t = s.data.contiguous();
    h5::write_dataset(f, f.id(), "data", t.sizes().vec(), t.data_ptr<float>());
    f.flush();
    f.close();
  }
  out.commit();
}

}  // namespace

std::vector<quant::SecondMoment> cached_statistics(
    const std::string& cache_dir, const json& description, const std::vector<int>& layers,
    const std::function<std::vector<quant::SecondMoment>(const std::vector<int>&)>& compute,
    bool* hit) {
  if (cache_dir.empty()) {
    if (hit) *hit = false;
    return compute(layers);
  }
  json full = description;
  full["format"] = "mpq-stats-v2";
  const std::string key = sha256_hex(full.dump());
  const std::string dir = cache_dir + "/stats-" + key.substr(0, 32);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw InputError(dir + ": cannot create statistics cache directory (" + ec.message() + ")");
  if (!fs::exists(dir + "/description.json"))
    write_file_atomic(dir + "/description.json", full.dump(2) + "\n");
  FileLock held(dir + "/.lock");
  std::map<int, quant::SecondMoment> have;
  std::vector<int> missing;
  for (int l : layers) {
    quant::SecondMoment s;
    if (load(layer_file(dir, l), key, l, &s))
      have[l] = std::move(s);
    else
      missing.push_back(l);
  }
  if (!missing.empty()) {
    auto computed = compute(missing);
    MPQ_ASSERT(computed.size() == missing.size(), "compute returned the wrong number of layers");
    for (size_t i = 0; i < missing.size(); ++i) {
      save(layer_file(dir, missing[i]), key, missing[i], computed[i]);
      have[missing[i]] = std::move(computed[i]);
    }
  }
  if (hit) *hit = missing.empty();
  std::vector<quant::SecondMoment> out;
  for (int l : layers) out.push_back(have[l]);
  return out;
}

}  // namespace mpq::ptq
