// Post-training weight quantization of a whole network with one method (method.md §1-6).
//
//   rtn         round-to-nearest, range = max|w| (per channel or per layer)
//   mse         the MSE-optimal single point: exact coefficient search with n = 1 (per channel,
//               or one shared step per layer); grid search with weights.search = "grid"
//   multipoint  greedy points up to max_points per channel, number of points per channel
//               allocated from calibration statistics (quant/allocation.h)
//
// The first/last-layer convention (weights.first_layer / last_layer: quantize | fp | 8bit)
// decides each layer's bits. Statistics come from the FP network (calibration.statistics =
// "fp", cached on disk) or, layer by layer, from the network whose earlier layers are already
// quantized ("quantized_prefix"; allocation is then per layer).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"
#include "mpq/model/network.h"
#include "mpq/ptq/calibrate.h"
#include "mpq/quant/allocation.h"
#include "mpq/quant/layer.h"
#include "mpq/quant/multipoint_layer.h"

namespace mpq::ptq {

struct WeightConfig {
  std::string method = "rtn";
  int bits = 4;
  quant::Granularity granularity = quant::Granularity::kPerChannel;
  std::string first_layer = "quantize", last_layer = "quantize";
  quant::PointSearch search;
  quant::AllocationOptions allocation;
  quant::Refit refit = quant::Refit::kNone;
  bool weighted = false;
  std::string statistics = "fp";  ///< "fp" | "quantized_prefix"
};

/// Reads /weights and /calibration/statistics of a resolved trial config.
WeightConfig parse_weight_config(const nlohmann::json& trial);

/// True if the method needs calibration data.
bool uses_calibration(const WeightConfig& w);

struct CalibrationContext {
  const data::ClassificationDataset* data = nullptr;
  std::vector<int64_t> indices;
  CalibrationOptions options;
  std::string cache_dir;              ///< "" = no cache
  nlohmann::json cache_description;   ///< model/data identity for the cache key
};

struct LayerOutcome {
  bool quantized = false;
  quant::QuantizedLayer q;
  nlohmann::json attrs = nlohmann::json::object();  ///< per-layer statistics for the trial file
};

struct NetworkQuantization {
  std::vector<LayerOutcome> layers;
  nlohmann::json summary = nlohmann::json::object();  ///< allocation and timing summary
  bool used_calibration = false;
  bool stats_cache_hit = false;
};

/// Bits of layer `index` of `count` under the first/last-layer convention; 0 = keep FP.
int layer_bits(const WeightConfig& w, int index, int count);

/// Quantizes every layer of `net` (which must hold FP weights) and sets the dequantized weights
/// into it.
NetworkQuantization quantize_network(model::Network& net, const WeightConfig& w, const CalibrationContext& calib);

}  // namespace mpq::ptq
