// `mpq data export` and `mpq eval --save-logits`: what the model sees, and what it says, written to HDF5 (docs/datasets.md, "Seeing what the
// model sees"):
//
//   /           attrs format="mpq-data-export", dataset (description), fingerprint,
//               preprocessing (one line), preprocessing_json, split, count
//   /images     float32 [N, C, H, W]  exactly the tensors the model gets (normalized); for data
//               whose sizes vary (detection) a flat float32 array, image i starting at
//               /offsets[i] with shape /shapes[i]
//   /shapes     int64   [N, 3]        C, H, W of every image
//   /labels     int64   [N]           class index (-1 for detection data)
//   /paths      strings [N]           the examples' paths relative to the dataset directory
//
// Written to a temporary name and renamed, like trial files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mpq/data/dataset.h"
#include "mpq/data/loader.h"
#include "mpq/eval/task.h"

namespace mpq::store {

/// Writes the first `limit` examples of `data` (0 = all) to `path`; `attrs` are added to the
/// root's attributes. Returns the number of examples written. Throws ConfigError if the
/// directory of `path` does not exist, InputError for a bad image or a write failure (no file is
/// left at `path` then).
int64_t export_dataset(const data::Dataset& data, int64_t limit, const std::string& path,
                       const data::LoaderOptions& loader, const nlohmann::json& attrs);

/// `mpq eval --save-logits`: the model outputs of an evaluation pass, with the examples they
/// belong to: every tensor the evaluator kept (classification: /logits float32 [N, classes],
/// /labels int64 [N]; detection: /det_image, /det_label int64 [M], /det_score float32 [M],
/// /det_box float32 [M, 4] in VOC coordinates), /positions int64 [N] (in the evaluated set),
/// /paths strings [N]; root attrs as for export_dataset plus `model` and `task`.
void write_eval_outputs(const std::string& path, const eval::EvalShard& shard,
                        const data::Dataset& data, const nlohmann::json& attrs);

/// A detections table [M, 7] from a trial file (/results/detections; its resolved config goes to
/// *trial_config) or from a plain HDF5 file with a dataset /detections (*trial_config = null).
/// InputError if the file has no such table or it is not [M, 7].
std::vector<double> read_detections(const std::string& path, nlohmann::json* trial_config);

}  // namespace mpq::store
