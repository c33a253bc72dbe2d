// AdaRound: learned rounding of each weight up or down (Nagel, Amjad, van Baalen, Louizos,
// Blankevoort, "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020), with
// the objective computed from the layer's calibration statistics Σ (no data pass):
//
//   W~ = s · clip(floor(W / s) + h(V), -L, L),   h(V) = clip(σ(V)(ζ - γ) + γ, 0, 1),  ζ = 1.1, γ =
//   -0.1 min_V  Σ_c (w~_c - w_c)ᵀ Σ_g (w~_c - w_c)  +  λ Σ_ij (1 - |2 h(V_ij) - 1|^β)
//
// which is the paper's layer-wise ||W x - W~ x||² (summed over output channels, averaged over the
// calibration rows; Σ is that average of x xᵀ) without activation quantization and with FP
// inputs. As in the paper: V starts where h(V) equals the fractional part of W / s (the
// neighbourhood of round-to-nearest, not random); Adam (lr 1e-3, β1 0.9, β2 0.999, ε 1e-8);
// the first 20% of iterations without the regularizer; then β decays linearly from 20 to 2;
// λ = 0.01; at the end h is rounded to {0, 1} (up where h >= 1/2). The step s is fixed
// beforehand (MSE-optimal or max range, per channel or one per layer).
//
// Rows (output channels) are independent under this objective: they are optimized in fixed
// blocks of kAdaroundRows rows, one block per OpenMP thread at a time, each with its own
// single-threaded GEMMs, so the result does not depend on the thread count. The random seed is
// not used by this objective (full-batch gradients, deterministic initialization).
//
// The data objective (adaround_layer_data, the paper's "asymmetric reconstruction", its §5):
//
//   min_V  mean_rows Σ_c ( f_a(W x)_c - f_a(W~ x~)_c )²  +  λ Σ_ij (1 - |2 h(V_ij) - 1|^β)
//
// with x the layer's inputs in the FP network (the target), x~ its inputs with the preceding
// layers already quantized, f_a the activation that directly consumes the layer's output (ReLU,
// a clip [0, M] such as ReLU6, or none), the layer's bias on both sides, and "rows" the output
// positions of a minibatch (images x H_out x W_out; rows of a linear input) — the scale of the
// statistics objective, which it equals for f_a = identity, x~ = x and the whole set as one batch.
// Each iteration draws `batch_size` distinct calibration inputs (std::mt19937_64 seeded with
// `seed`, a partial Fisher-Yates shuffle); Adam is torch::optim::Adam (the same defaults);
// gradients come from LibTorch's autograd through the conv/linear. Same initialization, schedule
// and final rounding as above. Guard: per row, the rounded result's objective on all calibration
// inputs against round-to-nearest's on the same grid; the better is kept.
// Deterministic for a seed and thread count (the conv kernels' sums depend on the thread count).
// Memory: the inputs x and x~ and the target f_a(W x), N x (2 in + out) float32 for N inputs,
// plus one minibatch's forward and backward.
//
// Guard: a row whose rounded result has a larger output error than round-to-nearest on the same
// grid keeps round-to-nearest (counted in rows_kept_rtn), so a layer is never worse than RTN.
//
// Cost per iteration: rows · d² multiply-adds (one GEMM with Σ) + O(rows · d); memory per
// block: V, Adam's two moments and the gradient, kAdaroundRows x d float32 each, plus Σ.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mpq/quant/layer.h"
#include "mpq/quant/output_error.h"

namespace mpq::quant {

constexpr int64_t kAdaroundRows = 32;

/// Which AdaRound objective: from the calibration statistics Σ (FP inputs, no activation, no
/// data pass) or the paper's asymmetric reconstruction on calibration data. Names "statistics",
/// "data".
enum class AdaroundObjective { kStatistics, kData };
const char* adaround_objective_name(AdaroundObjective o);

struct AdaroundOptions {
  int64_t iterations = 10000;
  double lambda = 0.01;  ///< regularizer weight
  double beta_start = 20, beta_end = 2;
  double warmup = 0.2;  ///< fraction of iterations without the regularizer
  double lr = 1e-3;     ///< Adam learning rate
  RangeMethod grid = RangeMethod::kMse;  ///< step of each row (or of the layer): kMse or kMax
  AdaroundObjective objective = AdaroundObjective::kStatistics;
  int64_t batch_size = 32;  ///< data objective: calibration inputs per iteration
  uint64_t seed = 0;        ///< data objective: minibatch draws
};

/// The activation that directly consumes a layer's output (f_a of the data objective).
struct OutputActivation {
  enum class Kind { kNone, kRelu, kClip } kind = Kind::kNone;
  double max = 0;  ///< kClip: the clip's upper bound (ReLU6: 6)
  torch::Tensor apply(const torch::Tensor& y) const;
  std::string name() const;  ///< "none", "relu", "clip(0, M)"
};

/// The layer as an operation on its input, for the data objective.
struct LayerOp {
  bool conv = true;  ///< conv2d, else linear
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  OutputActivation activation;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w,
                        const torch::Tensor& bias) const;
};

/// Calibration inputs of one layer for the data objective, the same inputs in the same order.
struct LayerInputs {
  torch::Tensor fp;         ///< [N, ...] inputs in the FP network
  torch::Tensor quantized;  ///< [N, ...] inputs with the preceding layers quantized
};

struct AdaroundResult {
  QuantizedLayer q;                      ///< one point per channel
  std::vector<double> output_error;      ///< [c_out] δ_cᵀ Σ δ_c after rounding
  std::vector<double> rtn_output_error;  ///< [c_out] the same for round-to-nearest on the grid
  std::vector<double> output_energy;     ///< [c_out] w_cᵀ Σ w_c
  double objective_soft = 0;  ///< final reconstruction term with the soft h(V), summed over rows
  int64_t undecided = 0;      ///< weights with h(V) strictly inside (0.01, 0.99) at the end
  int64_t rows_kept_rtn = 0;  ///< rows where the guard kept round-to-nearest
  int64_t rounded_up = 0, rounded_down = 0;  ///< weights rounded against round-to-nearest
  /// Data objective only: its reconstruction term on all calibration inputs for the final
  /// codes, for round-to-nearest on the same grid, and mean_rows Σ_c f_a(W x)_c² (energy).
  double data_error = 0, data_rtn_error = 0, data_energy = 0;
};

/// `progress` (optional) is called with the number of iterations done by a block, serialized.
AdaroundResult adaround_layer(const float* w, int64_t c_out, int64_t d, int64_t groups, int bits,
                              Granularity granularity, const SecondMoment& stats,
                              const AdaroundOptions& options,
                              const std::function<void(int64_t)>& progress = {});

/// AdaRound with the data objective (header comment). w: [c_out, c_in / groups, kh, kw] or
/// [c_out, c_in] float32, bias [c_out]. `stats` (FP statistics of the layer) fills
/// output_error / rtn_output_error / output_energy for comparison with the other methods; it does
/// not guard. `progress` is called with rows x iterations done, as adaround_layer's.
AdaroundResult adaround_layer_data(const torch::Tensor& w, const torch::Tensor& bias,
                                   const LayerOp& op, const LayerInputs& inputs, int bits,
                                   Granularity granularity, const SecondMoment& stats,
                                   const AdaroundOptions& options,
                                   const std::function<void(int64_t)>& progress = {});

}  // namespace mpq::quant
