#include "mpq/eval/voc_ap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "mpq/util/error.h"

namespace mpq::eval {

double voc_iou(const double* a, const double* b) {
  const double iw = std::min(a[2], b[2]) - std::max(a[0], b[0]) + 1.0;
  const double ih = std::min(a[3], b[3]) - std::max(a[1], b[1]) + 1.0;
  if (iw <= 0 || ih <= 0) return 0.0;
  const double inter = iw * ih;
  const double uni =
      (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0) + (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0) - inter;
  return inter / uni;
}

const char* voc07_thresholds_name(Voc07Thresholds t) {
  switch (t) {
    case Voc07Thresholds::kExact:
      return "exact";
    case Voc07Thresholds::kNumpy:
      return "numpy";
    default:
      return "devkit";
  }
}

Voc07Thresholds parse_voc07_thresholds(const std::string& name) {
  for (auto t : {Voc07Thresholds::kDevkit, Voc07Thresholds::kExact, Voc07Thresholds::kNumpy})
    if (name == voc07_thresholds_name(t)) return t;
  throw ConfigError("/eval/voc07_thresholds: expected devkit, exact or numpy, got '" + name + "'");
}

std::vector<double> voc07_thresholds(Voc07Thresholds t) {
  std::vector<double> v(11);
  const double step = 0.1;  // the IEEE products k * 0.1, as MATLAB and numpy compute them
  for (int k = 0; k <= 10; ++k) {
    switch (t) {
      case Voc07Thresholds::kExact:
        v[k] = k / 10.0;
        break;
      case Voc07Thresholds::kNumpy:
        v[k] = k * step;
        break;
      default:  // MATLAB's colon from both ends; the middle element is (a + b) / 2
        v[k] = k < 5 ? k * step : k == 5 ? 0.5 : 1.0 - (10 - k) * step;
    }
  }
  return v;
}

namespace {

// 11-point AP and area AP from the cumulative counts of one class.
void ap_of(const std::vector<double>& tp, const std::vector<double>& fp, int64_t positives,
           const std::vector<double>& thresholds, double* ap07, double* ap12) {
  const size_t n = tp.size();
  std::vector<double> rec(n), prec(n);
  double ctp = 0, cfp = 0;
  for (size_t i = 0; i < n; ++i) {
    ctp += tp[i];
    cfp += fp[i];
    rec[i] = ctp / static_cast<double>(positives);
    prec[i] = ctp / std::max(ctp + cfp, std::numeric_limits<double>::epsilon());
  }
  double s = 0;
  for (const double t : thresholds) {
    double p = 0;
    for (size_t i = 0; i < n; ++i)
      if (rec[i] >= t) p = std::max(p, prec[i]);
    s += p / 11.0;
  }
  *ap07 = s;
  std::vector<double> mrec = {0.0}, mpre = {0.0};
  mrec.insert(mrec.end(), rec.begin(), rec.end());
  mpre.insert(mpre.end(), prec.begin(), prec.end());
  mrec.push_back(1.0);
  mpre.push_back(0.0);
  for (size_t i = mpre.size() - 1; i > 0; --i) mpre[i - 1] = std::max(mpre[i - 1], mpre[i]);
  double a = 0;
  for (size_t i = 0; i + 1 < mrec.size(); ++i)
    if (mrec[i + 1] != mrec[i]) a += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
  *ap12 = a;
}

}  // namespace

VocApResult voc_ap(const std::vector<VocDetection>& detections,
                   const std::vector<VocImageTruth>& truth, int classes,
                   const VocApOptions& options) {
  VocApResult r;
  const std::vector<double> thresholds = voc07_thresholds(options.thresholds);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.ap07.assign(static_cast<size_t>(classes), nan);
  r.ap12.assign(static_cast<size_t>(classes), nan);
  r.positives.assign(static_cast<size_t>(classes), 0);
  r.detections.assign(static_cast<size_t>(classes), 0);
  // Ground-truth boxes of each (class, image), as indices into the image's boxes.
  std::vector<std::vector<std::vector<int>>> gt(static_cast<size_t>(classes),
                                                std::vector<std::vector<int>>(truth.size()));
  for (size_t im = 0; im < truth.size(); ++im)
    for (size_t j = 0; j < truth[im].labels.size(); ++j) {
      const int c = truth[im].labels[j];
      gt[static_cast<size_t>(c)][im].push_back(static_cast<int>(j));
      if (!truth[im].difficult[j]) r.positives[static_cast<size_t>(c)]++;
    }
  std::vector<std::vector<size_t>> by_class(static_cast<size_t>(classes));
  for (size_t i = 0; i < detections.size(); ++i)
    by_class[static_cast<size_t>(detections[i].label)].push_back(i);

  double sum07 = 0, sum12 = 0;
  int counted = 0;
  for (int c = 0; c < classes; ++c) {
    auto& idx = by_class[static_cast<size_t>(c)];
    r.detections[static_cast<size_t>(c)] = static_cast<int64_t>(idx.size());
    // Descending score; ties in (image index, emission order) order: a total order, so an
    // unstable sort gives the same result.
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      const VocDetection &x = detections[a], &y = detections[b];
      if (x.score != y.score) return x.score > y.score;
      if (x.image != y.image) return x.image < y.image;
      return a < b;
    });
    std::vector<std::vector<uint8_t>> matched(truth.size());
    for (size_t im = 0; im < truth.size(); ++im)
      matched[im].assign(gt[static_cast<size_t>(c)][im].size(), 0);
    std::vector<double> tp(idx.size(), 0.0), fp(idx.size(), 0.0);
    for (size_t k = 0; k < idx.size(); ++k) {
      const VocDetection& d = detections[idx[k]];
      const auto im = static_cast<size_t>(d.image);
      const auto& cand = gt[static_cast<size_t>(c)][im];
      double best = -std::numeric_limits<double>::infinity();
      size_t jbest = 0;
      for (size_t j = 0; j < cand.size(); ++j) {
        const double iou = voc_iou(d.box, truth[im].boxes.data() + 4 * cand[j]);
        if (iou > best) {
          best = iou;
          jbest = j;
        }
      }
      const bool hit =
          options.strict ? best > options.iou_threshold : best >= options.iou_threshold;
      if (hit) {
        if (truth[im].difficult[static_cast<size_t>(cand[jbest])]) continue;  // ignored
        if (!matched[im][jbest]) {
          tp[k] = 1;
          matched[im][jbest] = 1;
        } else {
          fp[k] = 1;
        }
      } else {
        fp[k] = 1;
      }
    }
    const int64_t npos = r.positives[static_cast<size_t>(c)];
    if (npos == 0) continue;
    ap_of(tp, fp, npos, thresholds, &r.ap07[static_cast<size_t>(c)],
          &r.ap12[static_cast<size_t>(c)]);
    sum07 += r.ap07[static_cast<size_t>(c)];
    sum12 += r.ap12[static_cast<size_t>(c)];
    ++counted;
  }
  r.map07 = counted ? sum07 / counted : 0.0;
  r.map12 = counted ? sum12 / counted : 0.0;
  return r;
}

}  // namespace mpq::eval
