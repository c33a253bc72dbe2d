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
  torch::Tensor e;
  if (deltas.size(0) == 0) return {};
  if (!s.sampled_rows) {
    // (Δ Σ) ⊙ Δ summed over columns; one GEMM per group.
    e = deltas.mm(s.data[g]).mul_(deltas).sum(1);
  } else {
    auto proj = deltas.mm(s.data[g].t());  // [n, m]
    e = proj.pow(2).sum(1) / static_cast<double>(std::max<int64_t>(1, s.data.size(1)));
  }
  e = e.to(torch::kFloat64).contiguous();
  const double* p = e.data_ptr<double>();
  std::vector<double> out(p, p + e.numel());
  for (auto& v : out)
    if (v < 0) v = 0;  // Σ is PSD; tiny negatives are float rounding
  return out;
}

}  // namespace mpq::quant
