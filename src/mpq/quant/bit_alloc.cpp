#include "mpq/quant/bit_alloc.h"

#include <queue>

#include "mpq/util/error.h"

namespace mpq::quant {

BitAllocation allocate_bits(const std::vector<double>& errors, int64_t c_out, int min_bits,
                            int max_bits, double average_bits) {
  const int W = max_bits - min_bits + 1;
  MPQ_ASSERT(static_cast<int64_t>(errors.size()) == c_out * W, "error table size");
  BitAllocation a;
  a.bits.assign(static_cast<size_t>(c_out), min_bits);
  // Budget in channel-bits: average * c_out (every channel of a layer has the same d).
  int64_t budget =
      static_cast<int64_t>(average_bits * static_cast<double>(c_out) + 1e-9) - c_out * min_bits;
  struct Cand {
    double gain;
    int64_t c;
    bool operator<(const Cand& o) const { return gain != o.gain ? gain < o.gain : c > o.c; }
  };
  std::priority_queue<Cand> heap;
  auto gain = [&](int64_t c, int b) {
    return errors[static_cast<size_t>(c * W + (b - min_bits))] -
           errors[static_cast<size_t>(c * W + (b + 1 - min_bits))];
  };
  for (int64_t c = 0; c < c_out; ++c)
    if (min_bits < max_bits) heap.push({gain(c, min_bits), c});
  while (budget > 0 && !heap.empty()) {
    Cand top = heap.top();
    heap.pop();
    int& b = a.bits[static_cast<size_t>(top.c)];
    ++b;
    --budget;
    if (b < max_bits) heap.push({gain(top.c, b), top.c});
  }
  double sum = 0;
  for (int b : a.bits) sum += b;
  a.average = c_out ? sum / static_cast<double>(c_out) : 0.0;
  return a;
}

LayerBitAllocation allocate_layer_bits(const std::vector<LayerBitTable>& layers, int base_bits,
                                       double budget_fraction) {
  MPQ_ASSERT(base_bits > 0, "base bits");
  LayerBitAllocation a;
  for (const auto& t : layers) {
    MPQ_ASSERT(!t.error.empty() && t.energy > 0, "layer bit table");
    a.bits.push_back(t.base_bits);
    a.budget += t.macs;
  }
  a.budget *= budget_fraction;
  double left = a.budget;
  for (;;) {
    int best = -1;
    double best_ratio = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto& t = layers[l];
      const int j = a.bits[l] - t.base_bits;
      const double cost = t.macs / base_bits;
      if (j + 1 >= static_cast<int>(t.error.size()) || cost > left || cost <= 0) continue;
      const double gain =
          (t.error[static_cast<size_t>(j)] - t.error[static_cast<size_t>(j + 1)]) / t.energy;
      if (gain > 0 && gain / cost > best_ratio) {
        best = static_cast<int>(l);
        best_ratio = gain / cost;
      }
    }
    if (best < 0) break;
    ++a.bits[static_cast<size_t>(best)];
    const double cost = layers[static_cast<size_t>(best)].macs / base_bits;
    left -= cost;
    a.spent += cost;
  }
  return a;
}

}  // namespace mpq::quant
