#include "mpq/train/pretrained.h"

#include <filesystem>
#include <fstream>

#include "mpq/model/network.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/process.h"
#include "mpq/util/progress.h"

namespace mpq::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kPrefix = "pretrained:";

std::string source_dir() {
  return MPQ_SOURCE_DIR;
}

std::string known_names() {
  std::string s;
  for (const auto& m : pretrained_models())
    s += (s.empty() ? "" : ", ") + std::string(kPrefix) + m.name;
  return s;
}

// The weights hash an archive's metadata records ("" if it has none or cannot be read).
std::string recorded_weights(const std::string& path) {
  try {
    const json meta = json::parse(model::archive_extra_meta(path));
    return meta.value("weights_sha256", "");
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

const std::vector<PretrainedModel>& pretrained_models() {
  static const std::vector<PretrainedModel> table = [] {
    const std::string path = source_dir() + "/configs/pretrained/models.json";
    std::ifstream in(path);
    if (!in) throw InputError(path + ": cannot read the table of pretrained models");
    json doc;
    try {
      doc = json::parse(in);
    } catch (const json::exception& e) {
      throw InputError(path + ": not valid JSON (" + e.what() + ")");
    }
    std::vector<PretrainedModel> out;
    for (const auto& [name, e] : doc.at("models").items())
      out.push_back({name, e.at("preset").get<std::string>(), e.at("resolution").get<int>(),
                     e.at("weights_sha256").get<std::string>(), e});
    return out;
  }();
  return table;
}

bool is_pretrained_ref(const std::string& ref) {
  return ref.rfind(kPrefix, 0) == 0;
}

const PretrainedModel& pretrained_model(const std::string& ref) {
  const std::string name = ref.substr(std::string(kPrefix).size());
  for (const auto& m : pretrained_models())
    if (m.name == name) return m;
  throw ConfigError("model '" + ref + "': unknown pretrained model (known: " + known_names() + ")");
}

std::string resolve_pretrained(const std::string& ref, const std::string& cache_dir) {
  const PretrainedModel& m = pretrained_model(ref);
  const fs::path dir = fs::path(cache_dir) / "pretrained";
  const std::string pt = (dir / (m.name + ".pt")).string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw InputError(dir.string() + ": cannot create (" + ec.message() + ")");
  FileLock held(pt + ".lock");
  if (fs::exists(pt) && recorded_weights(pt) == m.weights_sha256) return pt;
  if (fs::exists(pt))
    info(pt +
         ": not an archive of the pinned weights (another version, or damaged): exporting "
         "it again");
  fs::remove(pt, ec);
  info("exporting " + ref + " on first use (scripts/pretrained.sh: pinned packages in .venv)");
  const ProgramResult r = run_program(
      {"bash", source_dir() + "/scripts/pretrained.sh", "--export", m.name, "--out", dir.string()});
  if (r.exit_code != 0) {
    std::string line = r.err;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    if (auto nl = line.rfind('\n'); nl != std::string::npos) line = line.substr(nl + 1);
    fs::remove(pt, ec);
    throw InputError(ref + ": export failed: " +
                     (line.empty() ? "exit code " + std::to_string(r.exit_code) : line));
  }
  if (!fs::exists(pt) || recorded_weights(pt) != m.weights_sha256)
    throw InputError(ref + ": the exporter wrote no archive with the pinned weights at " + pt);
  return pt;
}

}  // namespace mpq::train
