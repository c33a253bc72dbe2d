// BLAS thread control and the one BLAS-heavy kernel mpq parallelizes itself.
//
// Debian's libblas.so.3, which LibTorch (aten::linear, mm) and mpq's own cblas calls use, is
// OpenBLAS when libopenblas0-pthread is installed. Its pthread pool has its own size (every core
// of the machine unless OPENBLAS_NUM_THREADS says otherwise), which at::set_num_threads does not
// change, and its results depend on how a call is split among those threads and on the call's
// shape. Measured with OpenBLAS 0.3.21 on AMD EPYC (AVX-512): a [30, 512] x [512, 1000] sgemm
// differs by up to 4.6e-5 between 1 and 2 threads; the calibration statistics of a ResNet-18
// layer by up to 2.4e-6; so the same trial gave other KL values on 2 MPI ranks (each bound to
// one core: OpenBLAS at 1 thread) than in one process (OpenBLAS at 2 threads).
//
// mpq therefore keeps BLAS single-threaded in every process (apply_threads calls
// use_single_threaded_blas) and parallelizes where it matters over fixed partitions of its own:
// upper_rank_k below (calibration statistics), row blocks of the output errors
// (quant/multipoint_layer.cpp). Every element is then computed by the same BLAS call with the
// same shape whatever the thread count, and a trial's results do not depend on the thread count
// or on how ranks are bound to cores. With another BLAS the symbols are absent and nothing changes.
#pragma once

#include <cstdint>
#include <string>

namespace mpq {

/// Sets OpenBLAS to one thread (idempotent; a no-op with another BLAS).
void use_single_threaded_blas();

/// The BLAS in use, for provenance: e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell
/// MAX_THREADS=64 (core Haswell), 1 thread"; "unknown (not OpenBLAS)" otherwise.
std::string blas_description();

/// Column width of the fixed blocks of upper_rank_k.
constexpr int64_t kRankKBlock = 128;

/// c += upper triangle of Aᵀ·A (row-major, leading dimension d; d x d), float32, where A is
///   samples_by_features:  [k, d] row-major (one sample per row), or
///   !samples_by_features: [d, k] row-major (one feature per row: im2col patches of one image).
/// Elements below the diagonal of c are left undefined (up to kRankKBlock - 1 below it are
/// written). The columns of c are cut into fixed blocks of kRankKBlock, each one sgemm
/// (BLAS single-threaded) on the OpenMP threads: results do not depend on the thread count.
void upper_rank_k(const float* a, int64_t d, int64_t k, bool samples_by_features, float* c);

}  // namespace mpq
