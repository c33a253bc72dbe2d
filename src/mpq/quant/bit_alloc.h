// "Physical" mixed precision as the reference for multipoint (method.md §6): per-channel bit
// widths under a fixed average number of bits per layer (Banner, Nahshan, Soudry, NeurIPS 2019,
// §4 "per-channel bit allocation").
//
// Banner et al. derive the allocation analytically from a noise model; mpq (ours) allocates
// greedily on measured errors instead: every channel starts at `min_bits`, and a bit at a time
// goes to the channel with the largest error reduction (the channel's MSE-optimal single-point
// error at b+1 bits vs b bits; output error δᵀΣδ when statistics are given, else weight error)
// until the layer's average reaches `average_bits` (a channel's bit costs d weights' worth, so
// the average is per weight). With error falling by ~4x per bit the returns diminish and the
// greedy choice is optimal for the tables.
#pragma once

#include <cstdint>
#include <vector>

namespace mpq::quant {

struct BitAllocation {
  std::vector<int> bits;  ///< [c_out]
  double average = 0;     ///< achieved average bits (<= target: integer steps may not land exactly)
};

/// @param errors        [c_out, max_bits - min_bits + 1]: error of channel c at min_bits + j bits
/// @param average_bits  target average in [min_bits, max_bits]
BitAllocation allocate_bits(const std::vector<double>& errors, int64_t c_out, int min_bits,
                            int max_bits, double average_bits);

}  // namespace mpq::quant
