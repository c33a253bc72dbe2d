// Multipoint quantization of one layer (method.md §1-4): greedy candidates for every output
// channel up to K points, their error tables for allocation (allocation.h), and the final
// QuantizedLayer once the number of points per channel is decided.
//
// First point:
//   per channel  the MSE-optimal point of each channel (exact search; grid search if asked), or
//                max-range RTN for `first_point = kMaxRange`
//   per layer    one step for the whole layer: the MSE-optimal step of all C*d weights (exact
//                search over the flattened tensor), or max|W| / L for kMaxRange
// A prescribed first point (LayerQuantSpec::first, e.g. GPTQ's codes and steps) replaces both.
// Extra points: always per channel, greedy on the residual (multipoint.h).
//
// Candidates are computed eagerly up to K for every channel (channels in parallel with OpenMP;
// the greedy construction of a channel does not depend on any other, so results are identical
// for any thread count and any split of layers across ranks). With statistics, the output error
// e_c after each point comes from batched GEMMs per group (output_error.h).
#pragma once

#include <cstdint>
#include <vector>

#include "mpq/quant/allocation.h"
#include "mpq/quant/layer.h"
#include "mpq/quant/multipoint.h"
#include "mpq/quant/output_error.h"

namespace mpq::quant {

enum class FirstPoint { kOptimal, kMaxRange };
enum class Refit {
  kNone,
  kWeight,  ///< least-squares steps for ||w - w~||^2
  kOutput,  ///< least-squares steps for (w - w~)^T Σ (w - w~) (needs statistics)
};

struct LayerQuantSpec {
  const float* w = nullptr;  ///< weights [c_out, d] row-major (c_out rows of length d)
  int64_t c_out = 0, d = 0;
  int64_t groups = 1;  ///< channel c belongs to group c / (c_out / groups)
  int bits = 4;
  Granularity granularity = Granularity::kPerChannel;
  FirstPoint first_point = FirstPoint::kOptimal;
  int max_points = 1;                   ///< K
  PointSearch search;                   ///< exact or grid (search.bits is overwritten by `bits`)
  bool weighted = false;                ///< importance-weighted objective with s = diag(Σ)
  const SecondMoment* stats = nullptr;  ///< optional calibration statistics of this layer
  double point_cost_macs = 1;           ///< MACs of one output channel
  /// Optional first point of every channel (one point each, [c_out, d] codes), used instead of
  /// the search; must outlive build().
  const QuantizedLayer* first = nullptr;
};

class LayerCandidates {
 public:
  /// Builds K greedy points for every channel and the error tables.
  static LayerCandidates build(const LayerQuantSpec& spec);

  const LayerTables& tables() const { return tables_; }

  /// Keeps points[c] points of channel c, optionally refits the steps, and packs the result.
  /// The tables of the result are the greedy ones (before refit); final errors are returned in
  /// *final_weight_error / *final_output_error (sums over channels; output NaN without stats).
  QuantizedLayer finalize(const std::vector<int>& points, const std::vector<int32_t>& grant_order,
                          Refit refit, double* final_weight_error, double* final_output_error);

 private:
  LayerQuantSpec spec_;
  std::vector<GreedyChannel> channels_;
  LayerTables tables_;
};

}  // namespace mpq::quant
