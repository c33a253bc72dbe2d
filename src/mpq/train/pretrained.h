// Real pretrained networks as built-in models (docs/models.md, "Pretrained networks"):
// `pretrained:<name>` in any config or on the command line is an archive that mpq exports on
// first use, the way `default:<arch>` is trained on first use.
//
// The table is configs/pretrained/models.json in the source tree (names, packages, the pinned
// SHA-256 of each weights file, resolution, preprocessing preset, published accuracy); the
// packages are pinned with hashes in configs/pretrained/requirements.txt. The archive of
// `pretrained:efficientnet_lite0` is <model.cache_dir>/pretrained/efficientnet_lite0.pt, written
// by `scripts/pretrained.sh --export efficientnet_lite0` (a project-local venv on Debian's
// torch, scripts/export_pretrained.py: torch.jit.trace of the package's model with the package's
// weights). Its mpq_meta.json records the source packages and versions, the weights file and its
// SHA-256, the licence and the torch version, and goes into every trial's manifest
// (model_meta). An archive whose recorded weights hash is not the table's (another version, a
// damaged file) is exported again. Several processes asking at once wait on a file lock.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq::train {

struct PretrainedModel {
  std::string name;            ///< "efficientnet_lite0"
  std::string preset;          ///< its preprocessing preset, "efficientnet-lite0"
  int resolution = 0;          ///< input side in pixels (224)
  std::string weights_sha256;  ///< of the weights file inside its package
  nlohmann::json entry;        ///< the whole table entry
};

/// The table (read once from configs/pretrained/models.json). InputError if it is unreadable.
const std::vector<PretrainedModel>& pretrained_models();

/// True for "pretrained:..." references.
bool is_pretrained_ref(const std::string& ref);

/// The table entry of a "pretrained:<name>" reference; ConfigError naming the known names for
/// an unknown one.
const PretrainedModel& pretrained_model(const std::string& ref);

/// The archive of a "pretrained:<name>" reference in `cache_dir`, exported first if it is
/// missing or does not carry the table's weights hash. InputError with the exporter's one-line
/// message if the export fails (package missing or corrupt, no network on first install).
std::string resolve_pretrained(const std::string& ref, const std::string& cache_dir);

}  // namespace mpq::train
