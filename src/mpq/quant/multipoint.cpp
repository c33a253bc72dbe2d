#include "mpq/quant/multipoint.h"

#include <cmath>

#include "mpq/quant/coefficient_search.h"
#include "mpq/quant/grid.h"
#include "mpq/util/error.h"

namespace mpq::quant {

namespace {
// Per-thread residual buffer: channels are handled in parallel, one per thread at a time.
double* scratch(int64_t d) {
  thread_local std::vector<double> buffer;
  if (static_cast<int64_t>(buffer.size()) < d) buffer.resize(static_cast<size_t>(d));
  return buffer.data();
}
}  // namespace

GreedyChannel::GreedyChannel(const float* w, int64_t d) : d_(d), w_(w) {
  for (int64_t j = 0; j < d; ++j) w_sq_norm_ += static_cast<double>(w[j]) * w[j];
}

void GreedyChannel::residual(double* out) const {
  for (int64_t j = 0; j < d_; ++j) out[j] = w_[j];
  for (int i = 0; i < n_points(); ++i) {
    const int8_t* k = codes(i);
    double s = steps_[static_cast<size_t>(i)];
    for (int64_t j = 0; j < d_; ++j) out[j] -= s * k[j];
  }
}

void GreedyChannel::residual(float* out) const {
  double* r = scratch(d_);
  residual(r);
  for (int64_t j = 0; j < d_; ++j) out[j] = static_cast<float>(r[j]);
}

double GreedyChannel::residual_sq_norm() const {
  double* r = scratch(d_);
  residual(r);
  double s = 0.0;
  for (int64_t j = 0; j < d_; ++j) s += r[j] * r[j];
  return s;
}

void GreedyChannel::add_point(const PointSearch& ps, const double* importance) {
  int L = max_level(ps.bits);
  double* r = scratch(d_);
  residual(r);
  size_t off = codes_.size();
  codes_.resize(off + static_cast<size_t>(d_));
  int8_t* k = codes_.data() + off;
  StepFit fit = ps.search == StepSearch::kExact
                    ? exact_step_search(r, d_, L, importance, k)
                    : grid_step_search(r, d_, L, ps.grid_candidates, importance, k);
  steps_.push_back(static_cast<float>(fit.step));
}

void GreedyChannel::add_fixed_point(double step, int bits) {
  int L = max_level(bits);
  double* r = scratch(d_);
  residual(r);
  size_t off = codes_.size();
  codes_.resize(off + static_cast<size_t>(d_));
  int8_t* k = codes_.data() + off;
  float s = static_cast<float>(step);
  quantize_rtn(r, d_, s, L, k);
  steps_.push_back(s);
}

void GreedyChannel::add_given_point(float step, const int8_t* codes) {
  codes_.insert(codes_.end(), codes, codes + d_);
  steps_.push_back(step);
}

void GreedyChannel::reconstruct(float* out) const {
  for (int64_t j = 0; j < d_; ++j) {
    double v = 0.0;
    for (int i = 0; i < n_points(); ++i)
      v += static_cast<double>(steps_[static_cast<size_t>(i)]) * codes(i)[j];
    out[j] = static_cast<float>(v);
  }
}

namespace {

// x^T M y for the three metric kinds.
double metric_dot(const double* metric, bool diagonal, int64_t d, const double* x,
                  const double* y) {
  double s = 0.0;
  if (metric == nullptr) {
    for (int64_t j = 0; j < d; ++j) s += x[j] * y[j];
  } else if (diagonal) {
    for (int64_t j = 0; j < d; ++j) s += metric[j] * x[j] * y[j];
  } else {
    for (int64_t a = 0; a < d; ++a) {
      double row = 0.0;
      const double* m = metric + a * d;
      for (int64_t b = 0; b < d; ++b) row += m[b] * y[b];
      s += x[a] * row;
    }
  }
  return s;
}

// Solves the symmetric positive definite system A x = b (n x n, row-major) in place by Cholesky.
// Returns false if A is not numerically positive definite.
bool cholesky_solve(std::vector<double>& A, std::vector<double>& b, int n) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) {
      double s = A[static_cast<size_t>(i * n + j)];
      for (int k = 0; k < j; ++k)
        s -= A[static_cast<size_t>(i * n + k)] * A[static_cast<size_t>(j * n + k)];
      if (i == j) {
        if (!(s > 1e-12 * std::fabs(A[static_cast<size_t>(i * n + i)]) && s > 0)) return false;
        A[static_cast<size_t>(i * n + i)] = std::sqrt(s);
      } else {
        A[static_cast<size_t>(i * n + j)] = s / A[static_cast<size_t>(j * n + j)];
      }
    }
  }
  for (int i = 0; i < n; ++i) {  // forward: L y = b
    double s = b[static_cast<size_t>(i)];
    for (int k = 0; k < i; ++k) s -= A[static_cast<size_t>(i * n + k)] * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = s / A[static_cast<size_t>(i * n + i)];
  }
  for (int i = n - 1; i >= 0; --i) {  // backward: L^T x = y
    double s = b[static_cast<size_t>(i)];
    for (int k = i + 1; k < n; ++k)
      s -= A[static_cast<size_t>(k * n + i)] * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = s / A[static_cast<size_t>(i * n + i)];
  }
  return true;
}

}  // namespace

void GreedyChannel::truncate(int n) {
  MPQ_ASSERT(n >= 0 && n <= n_points(), "truncate beyond the points present");
  if (n == n_points()) return;
  steps_.resize(static_cast<size_t>(n));
  codes_.resize(static_cast<size_t>(n) * static_cast<size_t>(d_));
}

void GreedyChannel::refit_steps(const double* metric, bool diagonal, bool keep_first) {
  const int n = n_points();
  if (n == 0 || (keep_first && n < 2)) return;
  // Target of the fit: w, or w minus the fixed first point.
  std::vector<double> target(w_, w_ + d_);
  if (keep_first) {
    const int8_t* k0 = codes(0);
    double s0 = steps_[0];
    for (int64_t j = 0; j < d_; ++j) target[static_cast<size_t>(j)] -= s0 * k0[j];
  }
  // Active points: nonzero codes. Dependent ones are detected by the Cholesky pivot test.
  std::vector<int> active;
  std::vector<std::vector<double>> cols;
  for (int i = keep_first ? 1 : 0; i < n; ++i) {
    const int8_t* k = codes(i);
    bool nonzero = false;
    for (int64_t j = 0; j < d_ && !nonzero; ++j) nonzero = k[j] != 0;
    if (!nonzero) continue;
    active.push_back(i);
    cols.emplace_back(k, k + d_);
  }
  const int m = static_cast<int>(active.size());
  if (m == 0) return;
  std::vector<double> A(static_cast<size_t>(m * m)), b(static_cast<size_t>(m));
  for (int a = 0; a < m; ++a) {
    b[static_cast<size_t>(a)] =
        metric_dot(metric, diagonal, d_, cols[static_cast<size_t>(a)].data(), target.data());
    for (int c = 0; c <= a; ++c) {
      double v = metric_dot(metric, diagonal, d_, cols[static_cast<size_t>(a)].data(),
                            cols[static_cast<size_t>(c)].data());
      A[static_cast<size_t>(a * m + c)] = v;
      A[static_cast<size_t>(c * m + a)] = v;
    }
  }
  if (!cholesky_solve(A, b, m)) return;  // dependent codes: keep the greedy steps
  std::vector<double> r(static_cast<size_t>(d_));
  residual(r.data());
  double before = metric_dot(metric, diagonal, d_, r.data(), r.data());
  std::vector<float> old = steps_;
  for (int i = keep_first ? 1 : 0; i < n; ++i) steps_[static_cast<size_t>(i)] = 0.0f;
  for (int a = 0; a < m; ++a)
    steps_[static_cast<size_t>(active[static_cast<size_t>(a)])] =
        static_cast<float>(b[static_cast<size_t>(a)]);
  residual(r.data());
  double after = metric_dot(metric, diagonal, d_, r.data(), r.data());
  if (!(after <= before)) steps_ = old;
}

}  // namespace mpq::quant
