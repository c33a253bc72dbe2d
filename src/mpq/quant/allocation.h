// How many points each output channel gets (method.md §3): the "effect of mixed precision".
//
// Input: per layer, tables of the error after k = 1..K greedy points for every channel (weight
// error ||w_c - w~_c||^2 and, with calibration statistics, output error e_c). Every channel has
// at least one point; the policy decides the extra ones:
//
//   uniform       every channel gets `uniform_points`
//   threshold     add points to c while e_c(n) / (w_c^T Σ w_c) > threshold and n < K (or, with
//                 threshold_on_weights, while ||w_c - w~_c||^2 / ||w_c||^2 > threshold: a target
//                 relative weight error per vector, no calibration data needed)
//   budget        B extra points' worth of cost, each given to the channel with the largest
//                 error reduction per unit cost (output error, normalized by its layer's output
//                 energy E_l = sum_c w_c^T Σ w_c so layers are comparable), network-wide or per
//                 layer; cost = 1 per point ("channels") or the channel's MACs ("macs"), and
//                 B = budget * (total output channels, or total MACs) of the layers in scope
//   weight_error  as budget, ranking by weight-error reduction normalized by sum_c ||w_c||^2
//                 (ablation: no calibration data)
//   random        as budget, extra points to uniformly random channels (ablation), seeded
//
// The greedy ranking is exact for the tables given: each grant takes the best remaining
// (gain / cost); ties break by layer then channel, so results are deterministic. Points with
// zero or negative gain are never granted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mpq::quant {

enum class Policy { kUniform, kThreshold, kBudget, kWeightError, kRandom };
enum class BudgetUnit { kChannels, kMacs };
enum class Scope { kNetwork, kLayer };

Policy parse_policy(
    const std::string& s);  ///< "uniform", "threshold", "budget", "weight_error", "random"
const char* policy_name(Policy p);
/// True for the policies that spend a budget (budget, weight_error, random): they read
/// budget, budget_unit and scope.
bool policy_has_budget(Policy p);

struct AllocationOptions {
  Policy policy = Policy::kBudget;
  int max_points = 4;       ///< K, at most this many points per channel
  int uniform_points = 1;   ///< for kUniform
  double threshold = 0.01;  ///< for kThreshold, on relative output error (or weight error)
  bool threshold_on_weights = false;
  double budget = 0.10;  ///< fraction, e.g. 0.10 = 10% extra output channels (or MACs)
  BudgetUnit unit = BudgetUnit::kChannels;
  Scope scope = Scope::kNetwork;
  uint64_t seed = 0;  ///< for kRandom
};

struct LayerTables {
  int64_t c_out = 0;
  int K = 1;                          ///< columns of the tables
  std::vector<double> weight_error;   ///< [c_out, K]
  std::vector<double> output_error;   ///< [c_out, K], empty without statistics
  std::vector<double> weight_energy;  ///< [c_out] ||w_c||^2
  std::vector<double> output_energy;  ///< [c_out] w_c^T Σ w_c, empty without statistics
  double point_cost_macs = 1;         ///< MACs of one output channel (per image)
};

struct Allocation {
  std::vector<std::vector<int>> points;  ///< per layer, [c_out], in [1, K]
  std::vector<std::vector<int32_t>>
      grant_order;               ///< per layer, [c_out * K]: rank of each grant, -1
  int64_t granted = 0;           ///< extra points granted
  double spent = 0, budget = 0;  ///< in the budget unit (points or MACs)
};

/// Runs the policy. Throws ConfigError if the policy needs output errors and a layer has none.
Allocation allocate(const std::vector<LayerTables>& layers, const AllocationOptions& options);

}  // namespace mpq::quant
