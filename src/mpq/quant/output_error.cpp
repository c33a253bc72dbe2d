#include "mpq/quant/output_error.h"

#include "mpq/util/error.h"

namespace mpq::quant {

torch::Tensor SecondMoment::diagonal() const {
  if (!sampled_rows) return data.diagonal(0, 1, 2).to(torch::kFloat64).contiguous();
  int64_t m = data.size(1);
  return (data.to(torch::kFloat64).pow(2).sum(1) / static_cast<double>(std::max<int64_t>(1, m)))
      .contiguous();
}

torch::Tensor SecondMoment::dense(int64_t g) const {
  if (!sampled_rows) return data[g].to(torch::kFloat64);
  auto x = data[g].to(torch::kFloat64);
  return x.t().mm(x) / static_cast<double>(std::max<int64_t>(1, x.size(0)));
}

std::vector<double> output_errors(const SecondMoment& s, int64_t g, const torch::Tensor& deltas) {
  MPQ_ASSERT(deltas.dim() == 2 && deltas.size(1) == s.d, "delta shape");
  const int64_t n = deltas.size(0);
  if (n == 0) return {};
  const auto dc = deltas.to(torch::kFloat32).contiguous();
  std::vector<double> out(static_cast<size_t>(n));
  // One GEMM per call, then each row's sum in float64 in column order (LibTorch's sum() may
  // split a single long row by the thread count).
  if (!s.sampled_rows) {
    // (Δ Σ) ⊙ Δ summed over columns.
    const auto proj = dc.mm(s.data[g]).contiguous();
    const float *pp = proj.data_ptr<float>(), *pd = dc.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      double e = 0;
      for (int64_t j = 0; j < s.d; ++j)
        e += static_cast<double>(pp[i * s.d + j]) * static_cast<double>(pd[i * s.d + j]);
      out[static_cast<size_t>(i)] = e;
    }
  } else {
    const auto proj = dc.mm(s.data[g].t()).contiguous();  // [n, m]
    const int64_t m = proj.size(1);
    const float* pp = proj.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      double e = 0;
      for (int64_t j = 0; j < m; ++j) e += static_cast<double>(pp[i * m + j]) * pp[i * m + j];
      out[static_cast<size_t>(i)] = e / static_cast<double>(std::max<int64_t>(1, m));
    }
  }
  for (auto& v : out)
    if (v < 0) v = 0;  // Σ is PSD; tiny negatives are float rounding
  return out;
}

}  // namespace mpq::quant
