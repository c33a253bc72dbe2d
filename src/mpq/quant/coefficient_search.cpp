#include "mpq/quant/coefficient_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

// Codes of `step` (all zero when no point helps).
void write_codes(const double* r, int64_t d, int L, const double* importance, int8_t* codes,
                 double step) {
  if (!codes) return;
  if (step > 0)
    weighted_rtn_error(r, d, step, L, importance, codes);
  else
    std::fill(codes, codes + d, static_cast<int8_t>(0));
}

// Re-evaluates the candidate steps exactly and writes the codes of the best. Candidates are
// sorted by their piece-formula value f; `scale[i]` bounds the magnitude of the terms that
// formula summed (R + 2 t S1 + t^2 S2), so its rounding error is far below 1e-9 * scale[i]: a
// candidate whose formula value exceeds the first's by more than both margins cannot be the
// best and is not re-evaluated (on ordinary vectors only the first is).
StepFit finish_search(const double* r, int64_t d, int L, const double* importance, int8_t* codes,
                      StepFit best, const double* cand_f, const double* cand_t, const double* scale,
                      int n_cand) {
  int n_eval = n_cand > 0 ? 1 : 0;
  while (n_eval < n_cand && cand_f[n_eval] <= cand_f[0] + 1e-9 * (scale[0] + scale[n_eval]))
    ++n_eval;
  if (n_eval == 1) {  // evaluate and write the codes in one pass
    double f = weighted_rtn_error(r, d, cand_t[0], L, importance, codes);
    if (f < best.error) {
      best.error = f;
      best.step = cand_t[0];
    } else {
      write_codes(r, d, L, importance, codes, best.step);
    }
    return best;
  }
  for (int i = 0; i < n_eval; ++i) {
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
  int64_t bucket = 0;  // calendar queue only
};

// The piece formula R - 2tS1 + t^2 S2 cancels catastrophically when R is huge compared with the
// optimum (e.g. one element of 1e30 next to elements of order 1). So the kMax pieces with the
// smallest formula values are kept and re-evaluated exactly from their codes at the end
// (finish_search); on ordinary vectors the first of them is the optimum anyway.
struct Candidates {
  static constexpr int kMax = 4;
  double f[kMax], t[kMax], scale[kMax];
  int n = 0;
  void offer(double fv, double tv, double sv) {
    if (n == kMax && fv >= f[kMax - 1]) return;
    int i = n < kMax ? n++ : kMax - 1;
    while (i > 0 && f[i - 1] > fv) {
      f[i] = f[i - 1];
      t[i] = t[i - 1];
      scale[i] = scale[i - 1];
      --i;
    }
    f[i] = fv;
    t[i] = tv;
    scale[i] = sv;
  }
};

// The breakpoints |r_j| / (k - 1/2), k = 1..L, in decreasing order, through a calendar queue:
// buckets of 1/t holding about two breakpoints each (the density of breakpoints in 1/t is
// sum_j |r_j|), filled a block of buckets at a time, counting-sorted by bucket and
// insertion-sorted by t within one. floor(c / t) is monotone in t, so buckets never disagree
// with the order of t (ties in t only create empty pieces). No sort of the magnitudes is
// needed: each element remembers the bucket of its next breakpoint. (8 bits: ~30 breakpoints
// per element above the optimum; the heap merge this replaces took ~3x longer.)
class BreakpointQueue {
 public:
  struct Scratch {
    std::vector<int> next_k;
    std::vector<int64_t> next_b, count;
    std::vector<Event> raw;
  };

  BreakpointQueue(const std::vector<Magnitude>& mags, double M1, double m_max, int L, Scratch& s)
      : mags_(mags), n_(static_cast<int64_t>(mags.size())), L_(L), c_(M1 / 2.0), s_(s) {
    s_.next_k.assign(static_cast<size_t>(n_), 1);
    s_.next_b.resize(static_cast<size_t>(n_));
    for (int64_t pos = 0; pos < n_; ++pos)
      s_.next_b[static_cast<size_t>(pos)] = bucket(2.0 * mags_[static_cast<size_t>(pos)].m);
    // Buckets per block: ~n breakpoints per block at few levels, ~8n at 8 bits (fewer passes
    // over the elements; a larger count array costs more to clear where there are few crossings).
    block_ = std::max<int64_t>(256, n_ / 2 * std::clamp(L_ / 16, 1, 8));
    s_.count.resize(static_cast<size_t>(block_) + 1);
    b0_ = bucket(2.0 * m_max);
  }

  // The next block of breakpoints in decreasing order of t into *sorted; false when none is left.
  bool next_block(std::vector<Event>* sorted) {
    if (b0_ == kNone) return false;
    const int64_t b_end = b0_ > kNone - block_ ? kNone : b0_ + block_;
    const int64_t upcoming = fill_raw(b_end);
    // Counting sort by bucket, then by t (decreasing) within a bucket.
    auto& count = s_.count;
    std::fill(count.begin(), count.end(), 0);
    for (const auto& e : s_.raw) ++count[static_cast<size_t>(e.bucket - b0_ + 1)];
    for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
    sorted->resize(s_.raw.size());
    for (const auto& e : s_.raw)
      (*sorted)[static_cast<size_t>(count[static_cast<size_t>(e.bucket - b0_)]++)] = e;
    for (size_t i = 1; i < sorted->size(); ++i) {
      Event e = (*sorted)[i];
      size_t j = i;
      for (; j > 0 && (*sorted)[j - 1].value < e.value; --j) (*sorted)[j] = (*sorted)[j - 1];
      (*sorted)[j] = e;
    }
    b0_ = upcoming == kNone ? kNone : std::max(b_end, upcoming);
    return true;
  }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

  int64_t bucket(double t) const {
    double b = c_ / t;
    return b < 4e18 ? static_cast<int64_t>(b) : kNone;
  }

  // The breakpoints in buckets [b0, b_end) into raw (each element's next ones); returns the
  // first bucket at or after b_end that holds a breakpoint (kNone if none).
  int64_t fill_raw(int64_t b_end) {
    s_.raw.clear();
    int64_t upcoming = kNone;
    for (int64_t pos = 0; pos < n_; ++pos) {
      int64_t b = s_.next_b[static_cast<size_t>(pos)];
      if (b >= b_end) {
        upcoming = std::min(upcoming, b);
        continue;
      }
      int k = s_.next_k[static_cast<size_t>(pos)];
      const double m = mags_[static_cast<size_t>(pos)].m;
      double t = m / (k - 0.5);
      for (;;) {
        s_.raw.push_back({t, k, pos, b});
        if (++k > L_) {
          b = kNone;
          break;
        }
        t = m / (k - 0.5);
        b = bucket(t);
        if (b >= b_end) {
          upcoming = std::min(upcoming, b);
          break;
        }
      }
      s_.next_k[static_cast<size_t>(pos)] = k;
      s_.next_b[static_cast<size_t>(pos)] = b;
    }
    return upcoming;
  }

  const std::vector<Magnitude>& mags_;
  const int64_t n_;
  const int L_;
  const double c_;
  Scratch& s_;
  int64_t block_ = 0, b0_ = 0;
};

}  // namespace

StepFit exact_step_search(const double* r, int64_t d, int L, const double* importance,
                          int8_t* codes) {
  MPQ_ASSERT(L >= 1 && L <= 255 && (codes == nullptr || L <= 127), "L out of range");
  // Scratch buffers reused across calls on this thread (the search runs once per point).
  thread_local std::vector<Magnitude> mags, by_size;
  thread_local BreakpointQueue::Scratch scratch;
  thread_local std::vector<Event> sorted;
  double R = 0.0, M1 = 0.0, m_max = 0.0;
  mags.clear();
  for (int64_t j = 0; j < d; ++j) {
    double s = importance ? importance[j] : 1.0;
    double m = std::fabs(r[j]);
    R += s * m * m;
    if (m > 0 && s > 0) {
      mags.push_back({m, s});
      M1 += m;
      m_max = std::max(m_max, m);
    }
  }
  StepFit best;
  best.error = R;
  if (mags.empty()) {
    if (codes) std::fill(codes, codes + d, static_cast<int8_t>(0));
    return best;
  }
  // The sweep over the breakpoints in decreasing order of t: on each piece between breakpoints
  // the codes are fixed, f(t) = R - 2 t S1 + t^2 S2, minimized at S1/S2 clipped to the piece.
  // (Lambdas over locals, not a class: the running sums stay in registers; a class with the
  // same code measured 3-5% slower in `mpq_bench search`.)
  Candidates cand;
  double S1 = 0.0, S2 = 0.0;
  double t_hi = std::numeric_limits<double>::infinity();
  auto consider_piece = [&](double t_lo) {
    if (S2 <= 0) return;  // all codes zero on this piece: f = R
    double t = S1 / S2;
    if (t < t_lo) t = t_lo;
    if (t > t_hi) t = t_hi;
    if (t > 0) cand.offer(R - 2.0 * t * S1 + t * t * S2, t, R + 2.0 * t * S1 + t * t * S2);
  };
  // Early stop. For any t <= T, every element with |r_j| > T*L is saturated at level L, so
  //   f(t) >= B(T) = sum_{|r_j| > T L} s_j (|r_j| - T L)^2,
  // and B grows as T falls. B(T) = A2 - 2 T L A1 + (T L)^2 A0 with running sums over the
  // elements above T*L, taken largest first from a max-heap (only the clipped tail is ever
  // popped). Once B(t_hi) is at least the best piece value, no smaller t can win (a margin
  // keeps rounding on the safe side).
  by_size.assign(mags.begin(), mags.end());
  auto smaller = [](const Magnitude& a, const Magnitude& b) { return a.m < b.m; };
  std::make_heap(by_size.begin(), by_size.end(), smaller);
  auto heap_end = by_size.end();
  bool any_above = false;
  double A0 = 0, A1 = 0, A2 = 0;
  // One breakpoint, in decreasing order of t: element `pos` moves to level k below t = value.
  // Returns true when the early stop says no smaller t can win.
  auto cross = [&](double value, int k, int64_t pos) {
    consider_piece(value);
    const Magnitude& g = mags[static_cast<size_t>(pos)];
    S1 += g.s * g.m;
    S2 += g.s * (2.0 * k - 1.0);
    t_hi = value;
    const double TL = t_hi * L;
    while (heap_end != by_size.begin() && by_size.front().m > TL) {
      std::pop_heap(by_size.begin(), heap_end, smaller);
      --heap_end;
      const Magnitude& p = *heap_end;
      A0 += p.s;
      A1 += p.s * p.m;
      A2 += p.s * p.m * p.m;
      any_above = true;
    }
    if (cand.n > 0 && any_above) {
      double bound = A2 - 2.0 * TL * A1 + TL * TL * A0;
      if (bound > (cand.n ? cand.f[0] : R) * (1 + 1e-9) + 1e-12 * R) return true;
    }
    return false;
  };

  BreakpointQueue queue(mags, M1, m_max, L, scratch);
  while (queue.next_block(&sorted))
    for (const auto& e : sorted)
      if (cross(e.value, e.k, e.pos))
        return finish_search(r, d, L, importance, codes, best, cand.f, cand.t, cand.scale, cand.n);
  consider_piece(0.0);  // below the last breakpoint every nonzero element sits at ±L
  return finish_search(r, d, L, importance, codes, best, cand.f, cand.t, cand.scale, cand.n);
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
