// Post-training weight quantization of a whole network with one method (method.md §1-6).
//
//   rtn         round-to-nearest, range = max|w| (per channel or per layer)
//   mse         the MSE-optimal single point: exact coefficient search with n = 1 (per channel,
//               or one shared step per layer); grid search with weights.search = "grid"
//   aciq        analytic clipping, Laplace or Gaussian prior (quant/ranges.h)
//   percentile  clipping at a percentile of |w|
//   ocs         outlier channel splitting, then max (or MSE) range (quant/ocs.h)
//   bit_alloc   per-channel bit widths at a fixed average ("physical" mixed precision)
//   layer_bits  per-layer bit widths under a network budget of extra bit operations ("true"
//               mixed precision, the paper's foil; quant/bit_alloc.h allocate_layer_bits)
//   multipoint  greedy points up to max_points per channel, number of points per channel
//               allocated from calibration statistics (quant/allocation.h)
//   gptq        GPTQ against the layer's calibration statistics (quant/gptq.h)
//   adaround    AdaRound's learned rounding against the layer's statistics (quant/adaround.h),
//               results cached per layer beside the statistics
//
// The first/last-layer convention (weights.first_layer / last_layer: quantize | fp | 8bit)
// decides each layer's bits. Statistics come from the FP network (calibration.statistics =
// "fp", cached on disk) or, layer by layer, from the network whose earlier layers are already
// quantized ("quantized_prefix"; allocation is then per layer).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"
#include "mpq/model/network.h"
#include "mpq/ptq/calibrate.h"
#include "mpq/quant/adaround.h"
#include "mpq/quant/allocation.h"
#include "mpq/quant/gptq.h"
#include "mpq/quant/layer.h"
#include "mpq/quant/multipoint_layer.h"

namespace mpq::ptq {

enum class WeightMethod {
  kRtn,
  kMse,
  kAciq,
  kPercentile,
  kOcs,
  kBitAlloc,
  kMultipoint,
  kGptq,
  kAdaround,
  kLayerBits
};
/// "rtn", "mse", "aciq", "percentile", "ocs", "bit_alloc", "multipoint", "gptq", "adaround",
/// "layer_bits".
const char* weight_method_name(WeightMethod m);
/// Inverse of weight_method_name; ConfigError for an unknown name.
WeightMethod parse_weight_method(const std::string& name);

/// The first/last-layer convention (method.md §7): quantized like the rest, kept in full
/// precision, or 8-bit. Names "quantize", "fp", "8bit".
enum class LayerRule { kQuantize, kFp, k8Bit };
const char* layer_rule_name(LayerRule r);
LayerRule parse_layer_rule(const std::string& name);

/// Where allocation statistics come from: the FP network, or the network whose earlier layers
/// are already quantized ("fp", "quantized_prefix").
enum class Statistics { kFp, kQuantizedPrefix };

/// Multipoint's first point: the MSE-optimal point (the paper's), max-range round-to-nearest, or
/// GPTQ's or AdaRound's codes and steps (extra points then go greedily on what they leave).
/// Names "mse", "rtn", "gptq", "adaround".
enum class FirstPointMethod { kMse, kRtn, kGptq, kAdaround };
const char* first_point_name(FirstPointMethod f);
FirstPointMethod parse_first_point(const std::string& name);

struct WeightConfig {
  WeightMethod method = WeightMethod::kRtn;
  int bits = 4;
  quant::Granularity granularity = quant::Granularity::kPerChannel;
  LayerRule first_layer = LayerRule::kQuantize, last_layer = LayerRule::kQuantize;
  quant::PointSearch search;
  quant::RangeSpec range;  ///< rtn (max), aciq, percentile
  double ocs_expand_ratio = 0.02;
  quant::RangeSpec ocs_range;             ///< range of the split weight (max or mse)
  double bit_alloc_average = 0;           ///< 0 = the trial's bits
  bool bit_alloc_by_output_error = true;  ///< rank channels by output (else weight) error
  double layer_bits_budget = 0.1;         ///< layer_bits: extra MACs' worth at the base bits
  int layer_bits_max = 8;                 ///< layer_bits: widest layer
  quant::AllocationOptions allocation;
  quant::Refit refit = quant::Refit::kNone;
  bool weighted = false;
  Statistics statistics = Statistics::kFp;
  quant::GptqOptions gptq;  ///< gptq, and multipoint with first_point = gptq
  FirstPointMethod first_point = FirstPointMethod::kMse;  ///< multipoint
  /// multipoint on GPTQ: GPTQ's error feedback over all of a channel's points (gptq.h)
  bool gptq_feedback = false;
  quant::AdaroundOptions adaround;  ///< adaround
};

/// True if the method needs calibration data.
bool uses_calibration(const WeightConfig& w);
/// True if AdaRound runs with the data objective (AdaRound, or multipoint on its first point).
bool uses_adaround_data(const WeightConfig& w);

struct CalibrationContext {
  const data::Dataset* data = nullptr;
  std::vector<int64_t> indices;
  CalibrationOptions options;
  std::string cache_dir;             ///< "" = no cache
  nlohmann::json cache_description;  ///< model/data identity for the cache key
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

/// Splits the layers of one network across processes (layer-parallel sweeps). quantize_network
/// calls these in the same order on every process; implementations communicate (sweep/ uses
/// MPI) and must give every process the same answers.
class LayerDistribution {
 public:
  virtual ~LayerDistribution() = default;
  /// The subset of `todo` (layer indices) this process quantizes. `cost[i]` estimates todo[i]'s
  /// work.
  virtual std::vector<int> assign(const std::vector<int>& todo,
                                  const std::vector<double>& cost) = 0;
  /// Every process's tables, in `todo` order. `mine` holds this process's layers.
  virtual std::vector<quant::LayerTables> share_tables(
      const std::vector<int>& todo, const std::map<int, quant::LayerTables>& mine) = 0;
  /// Every process's finished layers, in `todo` order.
  virtual std::vector<LayerOutcome> share_layers(const std::vector<int>& todo,
                                                 const std::map<int, LayerOutcome>& mine) = 0;
  /// Collective error agreement: if any process passes a non-empty message, every process
  /// throws the first such message (by rank), as ConfigError if that process flagged it as one,
  /// else as InputError.
  virtual void agree(const std::string& my_error, bool config_error = false) = 0;
};

/// Bits of layer `index` of `count` under the first/last-layer convention; 0 = keep FP.
int layer_bits(const WeightConfig& w, int index, int count);

/// Quantizes every layer of `net` (which must hold FP weights) and sets the dequantized weights
/// into it. With `dist`, the layers are split across processes (statistics, candidates and
/// finalization of each layer happen on one process; the allocation runs on the shared tables)
/// and every process ends with the whole quantized network; the result equals the
/// single-process one. Quantized-prefix statistics cannot be distributed (ConfigError).
NetworkQuantization quantize_network(model::Network& net, const WeightConfig& w,
                                     const CalibrationContext& calib,
                                     LayerDistribution* dist = nullptr);

}  // namespace mpq::ptq
