#include "mpq/data/manifest_datasets.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "mpq/util/error.h"

namespace mpq::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kRemake = " (make it again with scripts/install-deps.sh --with-pretrained)";

json read_manifest(const fs::path& root, const std::string& format, const std::string& what) {
  const fs::path path = root / "manifest.json";
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw InputError(root.string() + ": does not exist (data.root of the " + what + " dataset)" +
                     kRemake);
  std::ifstream in(path);
  if (!in) throw InputError(path.string() + ": cannot read the manifest" + kRemake);
  json m;
  try {
    m = json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(path.string() + ": not valid JSON (" + e.what() + ")" + kRemake);
  }
  if (!m.is_object() || m.value("format", "") != format || !m.contains("images") ||
      !m["images"].is_array())
    throw InputError(path.string() + ": expected a manifest with \"format\": \"" + format +
                     "\" and an \"images\" list" + kRemake);
  return m;
}

// The file of entry k, checked to exist; its size.
FileItem manifest_item(const fs::path& root, const json& entry, size_t k, int64_t label) {
  const std::string where = (root / "manifest.json").string() + ": images/" + std::to_string(k);
  if (!entry.is_object() || !entry.contains("file") || !entry["file"].is_string())
    throw InputError(where + ": expected an object with a \"file\" path");
  const std::string rel = entry["file"];
  std::error_code ec;
  const auto bytes = fs::file_size(root / rel, ec);
  if (ec)
    throw InputError(where + ": " + (root / rel).string() + " is missing (" + ec.message() + ")" +
                     kRemake);
  return {rel, static_cast<int64_t>(bytes), label};
}

// Counts per package and the licences met, for result manifests.
json provenance_of(const json& images) {
  std::map<std::string, int64_t> packages;
  std::map<std::string, int64_t> licences;
  for (const auto& im : images) {
    packages[im.value("package", "?") + " " + im.value("version", "")] += 1;
    licences[im.value("licence", im.value("license", "?"))] += 1;
  }
  return {{"packages", packages}, {"licences", licences}};
}

}  // namespace

std::unique_ptr<Dataset> open_imagenet_samples(const std::string& root, const std::string& split,
                                               const FileDatasetOptions& options) {
  if (!split.empty() && split != "all")
    throw ConfigError("imagenet_samples has one split (\"\" or \"all\"), not \"" + split + "\"");
  const fs::path dir(root);
  const json m = read_manifest(dir, "mpq-imagenet-samples", "imagenet_samples");
  std::vector<FileItem> items;
  const json& images = m["images"];
  for (size_t k = 0; k < images.size(); ++k) {
    const json& e = images[k];
    if (!e.is_object() || !e.contains("label") || !e["label"].is_number_integer() ||
        e["label"].get<int64_t>() < 0 || e["label"].get<int64_t>() >= 1000)
      throw InputError((dir / "manifest.json").string() + ": images/" + std::to_string(k) +
                       ": expected an integer \"label\" in [0, 1000)");
    items.push_back(manifest_item(dir, e, k, e["label"].get<int64_t>()));
  }
  std::vector<std::string> classes;
  for (int c = 0; c < 1000; ++c) classes.push_back(std::to_string(c));
  json man = {{"dataset", "imagenet_samples"},
              {"split", split},
              {"layout", "manifest"},
              {"label_mapping",
               "class index from the file name (imagenet_<nn>_<class>.jpg), torchvision's order"},
              {"source", m.value("package", "") + " " + m.value("package_version", "")},
              {"licence", m.value("license", "")}};
  const std::string desc = "imagenet_samples (" + std::to_string(items.size()) +
                           " labelled images of " + man["source"].get<std::string>() + ") at " +
                           dir.string();
  return make_file_dataset("imagenet_samples", dir.string(), std::move(items), classes, options,
                           man, desc);
}

std::unique_ptr<Dataset> open_photos(const std::string& root, const std::string& split,
                                     const FileDatasetOptions& options) {
  if (split != "eval" && split != "calibration" && split != "all")
    throw ConfigError("photos has the splits \"eval\", \"calibration\" and \"all\", not \"" +
                      split + "\"");
  const fs::path dir(root);
  const json m = read_manifest(dir, "mpq-photos", "photos");
  std::vector<FileItem> items;
  json kept = json::array();
  const json& images = m["images"];
  for (size_t k = 0; k < images.size(); ++k) {
    const json& e = images[k];
    const std::string s = e.is_object() ? e.value("split", "") : "";
    if (s != "eval" && s != "calibration")
      throw InputError((dir / "manifest.json").string() + ": images/" + std::to_string(k) +
                       ": expected \"split\": \"eval\" or \"calibration\"");
    if (split != "all" && s != split) continue;
    items.push_back(manifest_item(dir, e, k, -1));
    kept.push_back(e);
  }
  if (items.empty())
    throw InputError((dir / "manifest.json").string() + ": no images in split \"" + split + "\"" +
                     kRemake);
  json man = {{"dataset", "photos"},
              {"split", split},
              {"layout", "manifest"},
              {"label_mapping", "none (unlabelled; fidelity against the FP model)"},
              {"provenance", provenance_of(kept)},
              {"split_rule", m.value("split_rule", "")}};
  const std::string desc =
      "photos " + split + " (" + std::to_string(items.size()) + " unlabelled photographs from " +
      std::to_string(man["provenance"]["packages"].size()) + " packages) at " + dir.string();
  return make_file_dataset("photos", dir.string(), std::move(items), {}, options, man, desc,
                           Task::kFidelity);
}

}  // namespace mpq::data
