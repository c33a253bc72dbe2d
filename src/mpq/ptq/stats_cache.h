// On-disk cache of calibration statistics: <cache_dir>/stats-<key>.h5, where key is the SHA-256
// of a JSON description of everything the statistics depend on (model file hash, BN folding,
// input shape, data fingerprint, calibration indices, CalibrationOptions). Files are written to
// a temporary name and renamed; a file lock serializes ranks that need the same statistics, so
// they are computed once per sweep. Layout (h5py-readable):
//   /            attrs format="mpq-stats", key, description (JSON)
//   /layers/NNNN attrs layer, groups, d, sampled_rows, rows_seen; dataset data float32
//                ([G, d, d] Σ, or [G, m, d] sampled rows)
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/quant/output_error.h"

namespace mpq::ptq {

/// Returns the statistics for `description` from the cache, or computes them with `compute`
/// and stores them. `hit` (optional) tells whether the cache answered.
std::vector<quant::SecondMoment> cached_statistics(
    const std::string& cache_dir, const nlohmann::json& description, const std::vector<int>& layers,
    const std::function<std::vector<quant::SecondMoment>()>& compute, bool* hit = nullptr);

}  // namespace mpq::ptq
