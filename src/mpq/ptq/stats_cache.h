// On-disk cache of calibration statistics, one file per layer:
//   <cache_dir>/stats-<key>/layer-<NNNN>.h5
// where key is the SHA-256 of a JSON description of everything the statistics depend on (model
// file hash, BN folding, input shape, data fingerprint, calibration indices, CalibrationOptions).
// Any subset of layers is served from the files present; the missing layers are computed in one
// pass and stored, so trial-parallel and layer-parallel runs (each rank asking for its own
// layers) share one cache and every layer is computed once. Files are written to a temporary
// name and renamed; a lock per key serializes processes. Layout of a layer file (h5py-readable):
//   /  attrs format="mpq-stats", key, layer, groups, d, sampled_rows, rows_seen;
//      dataset data float32 ([G, d, d] Σ, or [G, m, d] sampled rows)
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/quant/output_error.h"

namespace mpq::ptq {

/// Statistics for `layers` (in that order): from the cache where present, the rest from
/// `compute(missing_layers)` (which must return them in the order given) and then cached.
/// `hit` (optional) is true when every layer came from the cache. cache_dir "" disables caching.
std::vector<quant::SecondMoment> cached_statistics(
    const std::string& cache_dir, const nlohmann::json& description, const std::vector<int>& layers,
    const std::function<std::vector<quant::SecondMoment>(const std::vector<int>&)>& compute,
    bool* hit = nullptr);

}  // namespace mpq::ptq
