// Calibration statistics for output-error allocation (method.md §3): for each quantized layer
// the second moment Σ = E[x x^T] of its input vectors (im2col patches of a conv input, per
// group; rows of a linear input), measured on N calibration images.
//
// Memory bound: Σ takes G * d^2 floats. When that exceeds `max_bytes_per_layer` (default
// 256 MiB), the layer keeps instead a uniform random sample (reservoir sampling, seeded) of m
// input rows per group with G * m * d floats within the same bound, and Σ ≈ X^T X / m
// (quant/output_error.h). Cost: a symmetric rank-k update per image, about d / (2 C_out) forward
// passes of the layer in multiply-adds (docs/benchmarks.md measures it per layer). ResNet-18's
// largest Σ (d = 4608) is 85 MB; VGG-16's first FC (d = 25088, 2.5 GB as Σ) would keep ~2600
// sampled rows.
//
// Statistics are cached on disk (stats_cache.h) keyed by the model file, the BN folding, the
// data, the calibration indices and these options, so a sweep computes them once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"
#include "mpq/data/loader.h"
#include "mpq/model/network.h"
#include "mpq/quant/output_error.h"

namespace mpq::ptq {

struct CalibrationOptions {
  int64_t batch_size = 64;
  int64_t max_bytes_per_layer = 256ll << 20;
  /// Conv inputs are unfolded (im2col) a few images at a time so that one step's patches stay
  /// under this (at least one image): a whole 224x224 batch would take gigabytes.
  int64_t max_patch_bytes = 64ll << 20;
  uint64_t seed = 0;           ///< for row sampling
  data::LoaderOptions loader;  ///< decoding threads, prefetch, bad-image policy
};

/// Adds the input rows of one call of layer L (input x as the layer sees it; conv: im2col
/// patches, per group; linear: rows) to `sigma` [G, d, d] float64: sigma_g += sum_rows r r^T.
/// Only the upper triangle (j >= i) of each group's block is accumulated (half the
/// multiply-adds of a GEMM); symmetrize_moments() completes the matrix. d >= 32: the BLAS
/// symmetric rank-k update (ssyrk), per image straight from the im2col patches when the layer
/// has >= 1024 output positions, else over all images' rows at once; smaller d (depthwise 3x3,
/// stems): direct dot products per group. Float32 within the call, float64 across calls;
/// deterministic for a fixed thread count. Returns the rows added per group.
int64_t accumulate_moments(const model::LayerInfo& L, const torch::Tensor& x, torch::Tensor& sigma,
                           int64_t max_patch_bytes);

/// Copies the upper triangle of each block onto the lower one (after accumulate_moments).
void symmetrize_moments(torch::Tensor& sigma);

/// Runs the calibration images `indices` of `data` through `net` in batches of
/// options.batch_size with `hook` installed (may be null); `on_batch(n)` (optional) is told each
/// batch's size. With `observed` (size net.layers().size()), a batch's forward pass stops once
/// every observed layer has seen its input as often as in the shape probe (LayerInfo::calls):
/// what the hook sees is unchanged, the layers after the last observed one are not computed.
void run_calibration_batches(model::Network& net, const data::Dataset& data,
                             const std::vector<int64_t>& indices, const CalibrationOptions& options,
                             model::LayerInputHook* hook,
                             const std::function<void(int64_t)>& on_batch = {},
                             const std::vector<bool>* observed = nullptr);

/// Collects statistics of the layers in `layers` (indices into net.layers()) by running the
/// calibration images through `net` with its current weights. Returns one SecondMoment per
/// entry of `layers`.
std::vector<quant::SecondMoment> collect_statistics(
    model::Network& net, const data::Dataset& data, const std::vector<int64_t>& indices,
    const std::vector<int>& layers, const CalibrationOptions& options,
    const std::string& progress_label = "calibrate");

/// Every input of layer `layer` on the calibration images `indices` (all calls, in order) as one
/// float32 tensor [N, ...] concatenated along the first dimension, with `net`'s current weights;
/// the pass stops after the layer. InputError naming the layer if it never ran or its inputs
/// differ in shape between calls. Memory: N times the layer's input.
torch::Tensor capture_layer_inputs(model::Network& net, const data::Dataset& data,
                                   const std::vector<int64_t>& indices, int layer,
                                   const CalibrationOptions& options,
                                   const std::string& progress_label = "capture");

}  // namespace mpq::ptq
