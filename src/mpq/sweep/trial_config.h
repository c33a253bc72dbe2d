// The trial config: everything that defines one quantization trial (docs/configs.md has the
// full table, generated from trial_schema()).
//
// Identity (method.md §7 and DEVELOPERS.md): a trial's id is the SHA-256 of
//   canonical(identity part of the resolved config) + "\n" + model SHA-256 + "\n" + data
//   fingerprint
// where canonical() is nlohmann::json::dump() (object keys sorted) and the identity part drops
// what cannot change the result: paths (/model/path, /data/root, /output, /export), /threads,
// /data/batch_size, /label, the option groups of methods (and multipoint policies) the trial does
// not use, and the calibration block when no calibration data is used. The model and the
// data enter through their content fingerprints instead of their paths, so the id is stable
// across runs, ranks and machines.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mpq/util/schema.h"

namespace mpq::sweep {

/// Schema of a trial config (`mpq quantize --config`, and every trial a sweep expands to).
const Schema& trial_schema();

/// The identity part of a resolved config (see header).
nlohmann::json trial_identity(const nlohmann::json& resolved);

/// Hex SHA-256 trial id.
std::string trial_id(const nlohmann::json& resolved, const std::string& model_sha256,
                     const std::string& data_fingerprint);

/// True if the trial's methods use calibration images (multipoint allocation, ...).
bool uses_calibration_data(const nlohmann::json& resolved);

/// Cross-field checks the schema cannot express (e.g. quantized-prefix statistics need a
/// per-layer allocation). Returns problems as "<pointer>: <message>".
std::vector<std::string> check_trial_semantics(const nlohmann::json& resolved);

/// Resolves and validates a user trial config; throws ConfigError listing every problem.
nlohmann::json resolve_trial_config(const nlohmann::json& user, const std::string& source);

}  // namespace mpq::sweep
