#include "mpq/quant/coefficient_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <vector>

#include "mpq/quant/grid.h"
#include "mpq/util/error.h"

namespace mpq::quant {

double weighted_rtn_error(const double* r, int64_t d, double step, int L, const double* importance,
                          int8_t* codes) {
  double err = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    int k = quantize_value(r[j], step, L);
    if (codes) codes[j] = static_cast<int8_t>(k);
    double e = r[j] - step * k;
    err += (importance ? importance[j] : 1.0) * e * e;
  }
  return err;
}

namespace {

struct Magnitude {
  double m;  // |r_j|
  double s;  // importance s_j
};

// One pending breakpoint of the merge: element `pos` (in decreasing-magnitude order) moves from
// level k-1 to level k when t falls below `value`.
// Codes of `step` (all zero when no point helps).
void write_codes(const double* r, int64_t d, int L, const double* importance, int8_t* codes,
                 double step) {
  if (!codes) return;
  if (step > 0)
    weighted_rtn_error(r, d, step, L, importance, codes);
  else
    std::fill(codes, codes + d, static_cast<int8_t>(0));
}

// Re-evaluates the candidate steps exactly and writes the codes of the best.
StepFit finish_search(const double* r, int64_t d, int L, const double* importance, int8_t* codes,
                      StepFit best, const double* cand_f, const double* cand_t, int n_cand) {
  (void)cand_f;
  for (int i = 0; i < n_cand; ++i) {
    double f = weighted_rtn_error(r, d, cand_t[i], L, importance, nullptr);
    if (f < best.error) {
      best.error = f;
      best.step = cand_t[i];
    }
  }
  write_codes(r, d, L, importance, codes, best.step);
  return best;
}

struct Event {
  double value;
  int k;
  int64_t pos;
  bool operator<(const Event& o) const { return value < o.value; }  // max-heap on value
};

}  // namespace

StepFit exact_step_search(const double* r, int64_t d, int L, const double* importance,
                          int8_t* codes) {
  MPQ_ASSERT(L >= 1 && L <= 255 && (codes == nullptr || L <= 127), "L out of range");
  double R = 0.0;
  std::vector<Magnitude> mags;
  mags.reserve(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) {
    double s = importance ? importance[j] : 1.0;
    double m = std::fabs(r[j]);
    R += s * m * m;
    if (m > 0 && s > 0) mags.push_back({m, s});
  }
  StepFit best;
  best.error = R;
  if (mags.empty()) {
    if (codes) std::fill(codes, codes + d, static_cast<int8_t>(0));
    return best;
  }
  std::sort(mags.begin(), mags.end(),
            [](const Magnitude& a, const Magnitude& b) { return a.m > b.m; });

  std::vector<Event> storage;
  storage.reserve(static_cast<size_t>(L));
  std::priority_queue<Event> heap(std::less<Event>(), std::move(storage));
  for (int k = 1; k <= L; ++k) heap.push({mags[0].m / (k - 0.5), k, 0});

  // The piece formula R - 2tS1 + t^2 S2 cancels catastrophically when R is huge compared with
  // the optimum (e.g. one element of 1e30 next to elements of order 1). So the kCandidates
  // pieces with the smallest formula values are re-evaluated exactly from their codes at the
  // end; on ordinary vectors the first of them is the optimum anyway.
  constexpr int kCandidates = 4;
  double cand_f[kCandidates], cand_t[kCandidates];
  int n_cand = 0;
  auto offer = [&](double f, double t) {
    if (n_cand == kCandidates && f >= cand_f[kCandidates - 1]) return;
    int i = n_cand < kCandidates ? n_cand++ : kCandidates - 1;
    while (i > 0 && cand_f[i - 1] > f) {
      cand_f[i] = cand_f[i - 1];
      cand_t[i] = cand_t[i - 1];
      --i;
    }
    cand_f[i] = f;
    cand_t[i] = t;
  };

  const int64_t n = static_cast<int64_t>(mags.size());
  double S1 = 0.0, S2 = 0.0;
  double t_hi = std::numeric_limits<double>::infinity();
  auto consider_piece = [&](double t_lo, double t_hi_piece) {
    if (S2 <= 0) return;  // all codes zero on this piece: f = R
    double t = S1 / S2;
    if (t < t_lo) t = t_lo;
    if (t > t_hi_piece) t = t_hi_piece;
    if (t > 0) offer(R - 2.0 * t * S1 + t * t * S2, t);
  };
  // Early stop. For any t <= T, every element with |r_j| > T*L is saturated at level L, so
  //   f(t) >= B(T) = sum_{|r_j| > T L} s_j (|r_j| - T L)^2,
  // and B grows as T falls. The elements above T*L are a prefix of the sorted magnitudes, so
  // B(T) = A2 - 2 T L A1 + (T L)^2 A0 with running sums over that prefix. Once B(t_hi) is at
  // least the best piece value, no smaller t can win (a margin keeps rounding on the safe side).
  int64_t prefix = 0;
  double A0 = 0, A1 = 0, A2 = 0;
  auto best_value = [&] { return n_cand ? cand_f[0] : R; };
  while (!heap.empty()) {
    Event e = heap.top();
    heap.pop();
    consider_piece(e.value, t_hi);
    const Magnitude& g = mags[static_cast<size_t>(e.pos)];
    S1 += g.s * g.m;
    S2 += g.s * (2.0 * e.k - 1.0);
    t_hi = e.value;
    if (e.pos + 1 < n)
      heap.push({mags[static_cast<size_t>(e.pos + 1)].m / (e.k - 0.5), e.k, e.pos + 1});
    double TL = t_hi * L;
    while (prefix < n && mags[static_cast<size_t>(prefix)].m > TL) {
      const Magnitude& p = mags[static_cast<size_t>(prefix++)];
      A0 += p.s;
      A1 += p.s * p.m;
      A2 += p.s * p.m * p.m;
    }
    if (n_cand > 0 && prefix > 0) {
      double bound = A2 - 2.0 * TL * A1 + TL * TL * A0;
      if (bound > best_value() * (1 + 1e-9) + 1e-12 * R)
        return finish_search(r, d, L, importance, codes, best, cand_f, cand_t, n_cand);
    }
  }
  consider_piece(0.0, t_hi);  // below the last breakpoint every nonzero element sits at ±L
  return finish_search(r, d, L, importance, codes, best, cand_f, cand_t, n_cand);
}

StepFit grid_step_search(const double* r, int64_t d, int L, int n_candidates,
                         const double* importance, int8_t* codes) {
  MPQ_ASSERT(n_candidates >= 1, "need at least one grid candidate");
  double mx = 0.0, R = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    mx = std::fmax(mx, std::fabs(r[j]));
    double s = importance ? importance[j] : 1.0;
    R += s * r[j] * r[j];
  }
  StepFit best;
  best.error = R;
  if (mx > 0) {
    for (int i = 1; i <= n_candidates; ++i) {
      double t = mx / L * static_cast<double>(i) / n_candidates;
      double f = weighted_rtn_error(r, d, t, L, importance, nullptr);
      if (f < best.error) {
        best.error = f;
        best.step = t;
      }
    }
  }
  write_codes(r, d, L, importance, codes, best.step);
  return best;
}

}  // namespace mpq::quant
