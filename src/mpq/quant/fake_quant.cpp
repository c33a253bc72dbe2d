#include "mpq/quant/fake_quant.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace mpq::quant {

at::Tensor fake_quantize(const at::Tensor& x, double scale, int64_t qmin, int64_t qmax) {
  // Bounds of the shortcut below: the grid must fit the float rounding trick's exact range.
  constexpr int64_t kGridLimit = int64_t{1} << 20;
  if (x.scalar_type() != at::kFloat || qmin < -kGridLimit || qmax > kGridLimit)
    return at::fake_quantize_per_tensor_affine(x, scale, 0, qmin, qmax);
  at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  const float sc = static_cast<float>(scale);
  const float inv = 1.0f / sc;  // PyTorch's kernel multiplies by the float reciprocal
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  // Values beyond the grid by more than one step clamp to it either way; inside, adding and
  // subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer, ties to
  // even (the default rounding mode), i.e. std::nearbyint without a libm call per value.
  const float wide_lo = lo - 1.0f, wide_hi = hi + 1.0f;
  constexpr float kRound = 12582912.0f;
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, in.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float v = src[i] * inv;
      v = std::min(std::max(v, wide_lo), wide_hi);
      v = (v + kRound) - kRound;
      v = std::min(std::max(v, lo), hi);
      dst[i] = v * sc;
    }
  });
  return out;
}

}  // namespace mpq::quant
