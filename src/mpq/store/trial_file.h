// One quantization trial = one HDF5 file. The layout is documented for users in
// docs/trial-file-format.md (h5py/pandas examples there); in short:
//
//   /                 attrs format="mpq-trial", format_version, trial_id, status="complete"
//   /config           string: the resolved trial config (JSON)
//   /manifest         attrs: provenance and conventions (method.md §7);
//                     dataset calibration_indices int64 [N] (empty without calibration data);
//                     dataset eval_indices int64 [M] (only with data.eval_subset / eval_limit:
//                     the evaluated examples' indices in the evaluation split)
//   /metrics          attrs: top1, top5, agreement, kl, fp_top1, ... (see TrialRecord::metrics)
//   /results/<name>   float64 tables of the evaluation (detection: per-class AP, detections),
//                     attr description
//   /layers/<NNNN>    one group per layer in execution order; attrs: name, kind, bits, ...
//       codes              int8    [P, d]  integer codes of every point, channel-major
//       scales             float32 [P]     step of every point: w~_c = sum scales[p] * codes[p]
//       point_channel      int32   [P]     output channel of every point
//       points_per_channel int32   [C]
//       weight_error       float32 [C, K]  ||w_c - w~_c||^2 after k+1 points (NaN: not computed)
//       output_error       float32 [C, K]  (w_c - w~_c)^T Σ (w_c - w~_c) after k+1 points (NaN)
//       grant_order        int32   [C, K]  order in which extra points were granted (-1: none)
//       bits_per_channel   int8    [C]     bit allocation: each channel's bits (grid L = 2^(b-1)-1)
//       ocs_source         int64   [S]     OCS: original input channel of each split column
//
// Writing goes through util/atomic_file.h ("<path>.tmp.<host>.<pid>", fsync, rename, fsync of the
// directory), so a file at the final path is always complete; status="complete" is the last
// attribute written.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpq/util/named_array.h"

namespace mpq::store {

constexpr int kTrialFormatVersion = 1;

struct LayerRecord {
  int index = 0;
  nlohmann::json attrs = nlohmann::json::object();  ///< name, kind, shape, bits, method, stats...
  int max_points = 1;                               ///< K, columns of the per-point tables
  std::vector<int32_t> points_per_channel;          ///< [C]
  int64_t d = 0;                                    ///< weight vector length
  std::vector<int8_t> codes;                        ///< [P, d]
  std::vector<float> scales;                        ///< [P]
  std::vector<int32_t> point_channel;               ///< [P]
  std::vector<float> weight_error;                  ///< [C, K]
  std::vector<float> output_error;                  ///< [C, K]
  std::vector<int32_t> grant_order;                 ///< [C, K]
  std::vector<int8_t> channel_bits;                 ///< [C] (bit allocation only)
  std::vector<int64_t> ocs_source;                  ///< [splits] (OCS only)
};

struct TrialRecord {
  std::string trial_id;
  nlohmann::json config = nlohmann::json::object();    ///< resolved trial config
  nlohmann::json manifest = nlohmann::json::object();  ///< flat: provenance, conventions
  std::vector<int64_t> calibration_indices;
  std::vector<int64_t> eval_indices;  ///< evaluated examples of the split ([] = all of it)
  nlohmann::json metrics = nlohmann::json::object();  ///< flat scalars
  std::vector<NamedArray> arrays;  ///< result tables: /results/<name> float64 datasets
  std::vector<LayerRecord> layers;
};

/// Writes the record atomically (see header). Throws ConfigError if the directory of `path`
/// does not exist, InputError on any write failure (no file is left at `path` then).
void write_trial(const std::string& path, const TrialRecord& record);

/// What read_trial reads besides attributes, config, manifest and points_per_channel.
enum class TrialParts {
  kSummary,      ///< nothing else
  kErrorTables,  ///< + result tables and the per-layer error / grant / bit tables (not codes)
  kAll,          ///< everything
};

/// Reads a trial file. Throws InputError if the file is missing, truncated, not an mpq trial
/// file, or incomplete.
TrialRecord read_trial(const std::string& path, TrialParts parts);
/// read_trial(path, arrays ? kAll : kSummary).
inline TrialRecord read_trial(const std::string& path, bool arrays = true) {
  return read_trial(path, arrays ? TrialParts::kAll : TrialParts::kSummary);
}

/// True if `path` is a complete, readable trial file; otherwise false with the reason.
bool validate_trial(const std::string& path, std::string* why = nullptr);

}  // namespace mpq::store
