#include "mpq/data/calibration.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace mpq::data {

std::vector<int64_t> calibration_indices(int64_t n, int64_t count, uint64_t seed) {
  if (n <= 0 || count <= 0) return {};
  count = std::min(count, n);
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    // Uniform in [i, n): explicit modulo-free draw so the sequence does not depend on the
    // standard library's distribution implementation.
    uint64_t span = static_cast<uint64_t>(n - i);
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do {
      x = rng();
    } while (x >= limit);
    std::swap(all[static_cast<size_t>(i)],
              all[static_cast<size_t>(i + static_cast<int64_t>(x % span))]);
  }
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace mpq::data
