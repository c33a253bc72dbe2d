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

// "True" mixed precision per layer (the foil of the paper's title; method `layer_bits`): every
// layer starts at its base bits b_l (the trial's bits, or the first/last-layer rule's) and bits
// are added one at a time, each to the layer with the largest output-error reduction per unit of
// extra cost, until the budget is spent:
//   gain of layer l from b to b + 1   (e_l(b) - e_l(b + 1)) / E_l   (E_l = sum_c w_c^T Σ w_c, so
//                                     layers compare as in multipoint's budget allocation)
//   cost                              macs_l / base_bits: one more weight bit on every MAC, in
//                                     MACs at the network's base precision (bit operations with
//                                     the activations' width fixed), so a budget of 0.2 is the
//                                     same 20% extra MACs that multipoint spends with
//                                     budget_unit = "macs"
//   budget                            budget * sum_l macs_l
// A grant that does not fit the remaining budget is skipped for cheaper ones; gains <= 0 are
// never granted; ties go to the lower layer index.
struct LayerBitTable {
  int base_bits = 4;          ///< b_l
  std::vector<double> error;  ///< [max_bits - base_bits + 1]: output error at base_bits + j
  double energy = 1;          ///< E_l (> 0)
  double macs = 0;            ///< per image
};

struct LayerBitAllocation {
  std::vector<int> bits;         ///< per layer
  double spent = 0, budget = 0;  ///< in MACs at the base precision
};

/// @param base_bits  the network's base precision (the cost unit)
LayerBitAllocation allocate_layer_bits(const std::vector<LayerBitTable>& layers, int base_bits,
                                       double budget_fraction);

}  // namespace mpq::quant
