// Calibration sampling (method.md §3): N example indices drawn without replacement from a
// dataset of size n with a seeded std::mt19937_64 (partial Fisher-Yates), returned sorted. The
// same (n, N, seed) gives the same indices on every machine; results record them.
#pragma once

#include <cstdint>
#include <vector>

namespace mpq::data {

/// @param n     dataset size
/// @param count number of indices wanted; clamped to n
/// @param seed  RNG seed
/// @return      sorted distinct indices in [0, n)
std::vector<int64_t> calibration_indices(int64_t n, int64_t count, uint64_t seed);

}  // namespace mpq::data
