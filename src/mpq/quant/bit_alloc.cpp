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

}  // namespace mpq::quant
