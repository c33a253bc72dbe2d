#include "mpq/quant/ocs.h"

#include <cmath>

#include "mpq/util/error.h"

namespace mpq::quant {

int64_t ocs_split_count(double r, int64_t c_in) {
  if (!(r > 0)) return 0;
  return static_cast<int64_t>(std::ceil(r * static_cast<double>(c_in) - 1e-9));
}

OcsSplit ocs_split(const float* w, int64_t c_out, int64_t c_in, int64_t k, int64_t splits) {
  OcsSplit s;
  s.c_out = c_out;
  s.c_in = c_in;
  s.k = k;
  // Column-major working copy: cols[j] holds input channel j's [c_out, k] weights.
  std::vector<std::vector<float>> cols(static_cast<size_t>(c_in),
                                       std::vector<float>(static_cast<size_t>(c_out * k)));
  for (int64_t o = 0; o < c_out; ++o)
    for (int64_t j = 0; j < c_in; ++j)
      for (int64_t t = 0; t < k; ++t)
        cols[static_cast<size_t>(j)][static_cast<size_t>(o * k + t)] = w[(o * c_in + j) * k + t];
  std::vector<float> colmax(cols.size(), 0.0f);
  for (size_t j = 0; j < cols.size(); ++j)
    for (float v : cols[j]) colmax[j] = std::max(colmax[j], std::fabs(v));
  std::vector<int64_t> origin(static_cast<size_t>(c_in));
  for (int64_t j = 0; j < c_in; ++j) origin[static_cast<size_t>(j)] = j;
  for (int64_t n = 0; n < splits; ++n) {
    size_t best = 0;
    for (size_t j = 1; j < cols.size(); ++j)
      if (colmax[j] > colmax[best]) best = j;
    for (auto& v : cols[best]) v *= 0.5f;
    colmax[best] *= 0.5f;
    cols.push_back(cols[best]);
    colmax.push_back(colmax[best]);
    origin.push_back(origin[best]);  // a split of a split still duplicates the original input
    s.source.push_back(origin[best]);
  }
  int64_t total = c_in + splits;
  s.weight.resize(static_cast<size_t>(c_out * total * k));
  for (int64_t o = 0; o < c_out; ++o)
    for (int64_t j = 0; j < total; ++j)
      for (int64_t t = 0; t < k; ++t)
        s.weight[static_cast<size_t>((o * total + j) * k + t)] =
            cols[static_cast<size_t>(j)][static_cast<size_t>(o * k + t)];
  return s;
}

std::vector<float> ocs_merge(const OcsSplit& s, const std::vector<float>& sw) {
  int64_t total = s.c_in + s.splits();
  MPQ_ASSERT(static_cast<int64_t>(sw.size()) == s.c_out * total * s.k, "split weight size");
  std::vector<float> out(static_cast<size_t>(s.c_out * s.c_in * s.k));
  for (int64_t o = 0; o < s.c_out; ++o) {
    for (int64_t j = 0; j < total; ++j) {
      int64_t dst = j < s.c_in ? j : s.source[static_cast<size_t>(j - s.c_in)];
      for (int64_t t = 0; t < s.k; ++t)
        out[static_cast<size_t>((o * s.c_in + dst) * s.k + t)] +=
            sw[static_cast<size_t>((o * total + j) * s.k + t)];
    }
  }
  return out;
}

}  // namespace mpq::quant
