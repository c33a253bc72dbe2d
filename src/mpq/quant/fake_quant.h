// Per-tensor fake quantization of activations (ptq/activations.h chooses the parameters).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace mpq::quant {

/// Per-tensor fake quantization with zero point 0: clamp(round_half_even(x / scale), qmin, qmax) *
/// scale, bit-identical to at::fake_quantize_per_tensor_affine(x, scale, 0, qmin, qmax) for
/// float32 x with |x / scale| < 2^63 (1 / scale and the products in float, as PyTorch's CPU kernel
/// computes them; unit test [act_quant]). Beyond that PyTorch's int64 cast overflows and gives
/// qmin; this clamps to the nearer end. Other dtypes go to the stock operator. Returns a new
/// tensor.
at::Tensor fake_quantize(const at::Tensor& x, double scale, int64_t qmin, int64_t qmax);

}  // namespace mpq::quant
