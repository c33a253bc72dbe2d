#include "mpq/store/data_export.h"

#include <unistd.h>

#include <filesystem>

#include "mpq/store/h5.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::store {
namespace fs = std::filesystem;

int64_t export_dataset(const data::Dataset& data, int64_t limit, const std::string& path,
                       const data::LoaderOptions& loader, const nlohmann::json& attrs) {
  fs::path p(path);
  if (p.has_parent_path() && !fs::is_directory(p.parent_path()))
    throw ConfigError("-o " + path + ": directory " + p.parent_path().string() +
                      " does not exist");
  const int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  auto shape = data.image_shape();
  std::vector<int64_t> all = {n, shape[0], shape[1], shape[2]};
  std::vector<float> images;
  images.reserve(static_cast<size_t>(n * data.image_bytes()));
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  {
    Progress bar("export images", n);
    data::BatchStream stream(data, data::index_range(0, n), 64, loader);
    data::Batch b;
    while (stream.next(&b)) {
      auto x = b.images.contiguous();
      images.insert(images.end(), x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
      for (int64_t i = 0; i < b.labels.size(0); ++i) {
        labels.push_back(b.labels[i].item<int64_t>());
        names.push_back(data.item_name(b.positions[static_cast<size_t>(i)]));
      }
      bar.advance(b.images.size(0) + b.skipped);
    }
  }
  all[0] = static_cast<int64_t>(labels.size());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    auto f = h5::File::create(tmp);
    h5::write_dataset(f, f.id(), "images", all, images.data());
    h5::write_dataset(f, f.id(), "labels", {all[0]}, labels.data());
    h5::write_string_list_dataset(f, f.id(), "paths", names);
    nlohmann::json a = attrs;
    a["format"] = "mpq-data-export";
    a["dataset"] = data.describe();
    a["fingerprint"] = data.fingerprint();
    a["preprocessing"] = data.preprocess().describe();
    a["preprocessing_json"] = data.preprocess().to_json().dump();
    a["count"] = all[0];
    h5::write_attrs(f, f.id(), a);
    f.flush();
    f.close();
    fsync_path(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  return all[0];
}

void write_eval_outputs(const std::string& path, const eval::EvalShard& shard,
                        const data::Dataset& data, const nlohmann::json& attrs) {
  fs::path p(path);
  if (p.has_parent_path() && !fs::is_directory(p.parent_path()))
    throw ConfigError(path + ": directory " + p.parent_path().string() + " does not exist");
  auto logits = shard.tensors.at("logits").contiguous();
  auto labels = shard.tensors.at("labels").contiguous();
  auto positions = shard.tensors.at("positions").contiguous();
  std::vector<std::string> names;
  for (int64_t i = 0; i < positions.size(0); ++i)
    names.push_back(data.item_name(positions[i].item<int64_t>()));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    auto f = h5::File::create(tmp);
    h5::write_dataset(f, f.id(), "logits", logits.sizes().vec(), logits.data_ptr<float>());
    h5::write_dataset(f, f.id(), "labels", {labels.size(0)}, labels.data_ptr<int64_t>());
    h5::write_dataset(f, f.id(), "positions", {positions.size(0)}, positions.data_ptr<int64_t>());
    h5::write_string_list_dataset(f, f.id(), "paths", names);
    nlohmann::json a = attrs;
    a["format"] = "mpq-eval-outputs";
    a["dataset"] = data.describe();
    a["fingerprint"] = data.fingerprint();
    a["preprocessing"] = data.preprocess().describe();
    a["preprocessing_json"] = data.preprocess().to_json().dump();
    a["count"] = shard.n;
    h5::write_attrs(f, f.id(), a);
    f.flush();
    f.close();
    fsync_path(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace mpq::store
