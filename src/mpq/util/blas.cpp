#include "mpq/util/blas.h"

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>

namespace mpq {

namespace {

// Looked up at run time: present when libblas.so.3 is OpenBLAS.
template <typename F>
F openblas_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void use_single_threaded_blas() {
  static const auto set = openblas_symbol<void (*)(int)>("openblas_set_num_threads");
  static const auto get = openblas_symbol<int (*)()>("openblas_get_num_threads");
  if (set && (!get || get() != 1)) set(1);
}

std::string blas_description() {
  const auto config = openblas_symbol<char* (*)()>("openblas_get_config");
  if (!config) return "unknown (not OpenBLAS)";
  std::string s = config();
  if (const auto core = openblas_symbol<char* (*)()>("openblas_get_corename"))
    s += std::string(" (core ") + core() + ")";
  if (const auto get = openblas_symbol<int (*)()>("openblas_get_num_threads"))
    s += ", " + std::to_string(get()) + (get() == 1 ? " thread" : " threads");
  return s;
}

void upper_rank_k(const float* a, int64_t d, int64_t k, bool samples_by_features, float* c) {
  if (d <= 0 || k <= 0) return;
  const int64_t blocks = (d + kRankKBlock - 1) / kRankKBlock;
  // The last blocks are the largest (a block computes rows 0..j1 of its columns): start them first.
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t b = blocks - 1; b >= 0; --b) {
    const int64_t j0 = b * kRankKBlock, j1 = std::min(d, j0 + kRankKBlock);
    const int m = static_cast<int>(j1), n = static_cast<int>(j1 - j0), kk = static_cast<int>(k);
    if (samples_by_features)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, kk, 1.0f, a, static_cast<int>(d),
                  a + j0, static_cast<int>(d), 1.0f, c + j0, static_cast<int>(d));
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0f, a, kk, a + j0 * k, kk,
                  1.0f, c + j0, static_cast<int>(d));
  }
}

}  // namespace mpq
