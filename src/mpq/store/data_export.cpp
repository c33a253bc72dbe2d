#include "mpq/store/data_export.h"

#include <unistd.h>

#include <filesystem>

#include "mpq/store/h5.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/atomic_file.h"
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
  std::vector<float> images;
  std::vector<int64_t> labels, shapes;
  std::vector<std::string> names;
  {
    Progress bar("export images", n);
    data::BatchStream stream(data, data::index_range(0, n), 64, loader);
    data::Batch b;
    while (stream.next(&b)) {
      std::vector<torch::Tensor> xs;
      if (b.images.defined())
        for (int64_t i = 0; i < b.images.size(0); ++i) xs.push_back(b.images[i]);
      else
        xs = b.image_list;
      for (size_t i = 0; i < xs.size(); ++i) {
        auto x = xs[i].contiguous();
        images.insert(images.end(), x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
        shapes.insert(shapes.end(), {x.size(0), x.size(1), x.size(2)});
        labels.push_back(b.labels[static_cast<int64_t>(i)].item<int64_t>());
        names.push_back(data.item_name(b.positions[i]));
      }
      bar.advance(b.size() + b.skipped);
    }
  }
  const auto count = static_cast<int64_t>(labels.size());
  AtomicFile out(path);
  const std::string& tmp = out.tmp();
  {
    auto f = h5::File::create(tmp);
    if (data.fixed_size()) {
      auto s = data.image_shape();
      h5::write_dataset(f, f.id(), "images", {count, s[0], s[1], s[2]}, images.data());
    } else {  // sizes vary (detection data): one flat array, each image's shape and offset
      std::vector<int64_t> offsets;
      int64_t at = 0;
      for (int64_t i = 0; i < count; ++i) {
        offsets.push_back(at);
        at += shapes[3 * i] * shapes[3 * i + 1] * shapes[3 * i + 2];
      }
      h5::write_dataset(f, f.id(), "images", {static_cast<int64_t>(images.size())}, images.data());
      h5::write_dataset(f, f.id(), "offsets", {count}, offsets.data());
    }
    h5::write_dataset(f, f.id(), "shapes", {count, 3}, shapes.data());
    h5::write_dataset(f, f.id(), "labels", {count}, labels.data());
    h5::write_string_list_dataset(f, f.id(), "paths", names);
    nlohmann::json a = attrs;
    a["format"] = "mpq-data-export";
    a["dataset"] = data.describe();
    a["fingerprint"] = data.fingerprint();
    a["preprocessing"] = data.preprocess().describe();
    a["preprocessing_json"] = data.preprocess().to_json().dump();
    a["count"] = count;
    h5::write_attrs(f, f.id(), a);
    f.flush();
    f.close();
    out.commit();
  }
  return count;
}

void write_eval_outputs(const std::string& path, const eval::EvalShard& shard,
                        const data::Dataset& data, const nlohmann::json& attrs) {
  fs::path p(path);
  if (p.has_parent_path() && !fs::is_directory(p.parent_path()))
    throw ConfigError(path + ": directory " + p.parent_path().string() + " does not exist");
  auto positions = shard.tensors.at("positions").contiguous();
  std::vector<std::string> names;
  for (int64_t i = 0; i < positions.size(0); ++i)
    names.push_back(data.item_name(positions[i].item<int64_t>()));
  AtomicFile out(path);
  const std::string& tmp = out.tmp();
  {
    auto f = h5::File::create(tmp);
    // Every per-example output the evaluator kept: classification "logits", "labels";
    // detection "det_image", "det_label", "det_score", "det_box"; always "positions".
    for (const auto& [name, t] : shard.tensors) {
      if (t.scalar_type() == torch::kInt64) {
        auto c = t.contiguous();
        h5::write_dataset(f, f.id(), name, c.sizes().vec(), c.data_ptr<int64_t>());
      } else {
        auto c = t.to(torch::kFloat32).contiguous();
        h5::write_dataset(f, f.id(), name, c.sizes().vec(), c.data_ptr<float>());
      }
    }
    h5::write_string_list_dataset(f, f.id(), "paths", names);
    nlohmann::json a = attrs;
    a["format"] = "mpq-eval-outputs";
    a["task"] = data::task_name(data.task());
    a["dataset"] = data.describe();
    a["fingerprint"] = data.fingerprint();
    a["preprocessing"] = data.preprocess().describe();
    a["preprocessing_json"] = data.preprocess().to_json().dump();
    a["count"] = shard.n;
    h5::write_attrs(f, f.id(), a);
    f.flush();
    f.close();
    out.commit();
  }
}

std::vector<double> read_detections(const std::string& path, nlohmann::json* trial_config) {
  auto f = h5::File::open_read(path);
  *trial_config = nullptr;
  std::string where = "detections";
  if (h5::has_attr(f.id(), "format") && h5::read_string_attr(f, f.id(), "format") == "mpq-trial") {
    *trial_config = nlohmann::json::parse(h5::read_string_dataset(f, f.id(), "config"));
    if (!h5::exists(f.id(), "results") ||
        !h5::exists(h5::open_group(f, f.id(), "results").id(), "detections"))
      throw InputError(path + ": the trial saved no detections (run it with eval.save_detections "
                              "= true)");
    where = "results/detections";
  } else if (!h5::exists(f.id(), "detections")) {
    throw InputError(path + ": no /detections table (expected float [M, 7]: image, class, score, "
                            "x1, y1, x2, y2)");
  }
  std::vector<int64_t> shape;
  std::vector<double> t;
  if (where == "detections") {
    t = h5::read_dataset<double>(f, f.id(), "detections", &shape);
  } else {
    auto g = h5::open_group(f, f.id(), "results");
    t = h5::read_dataset<double>(f, g.id(), "detections", &shape);
  }
  if (shape.size() != 2 || shape[1] != 7)
    throw InputError(path + ": /" + where + " must be [M, 7], got a different shape");
  return t;
}

}  // namespace mpq::store
