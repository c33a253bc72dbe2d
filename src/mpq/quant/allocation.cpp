#include "mpq/quant/allocation.h"

#include <algorithm>
#include <queue>
#include <random>

#include "mpq/util/error.h"

namespace mpq::quant {

Policy parse_policy(const std::string& s) {
  if (s == "uniform") return Policy::kUniform;
  if (s == "threshold") return Policy::kThreshold;
  if (s == "budget") return Policy::kBudget;
  if (s == "weight_error") return Policy::kWeightError;
  if (s == "random") return Policy::kRandom;
  throw ConfigError("unknown allocation policy '" + s + "'");
}

bool policy_has_budget(Policy p) {
  return p == Policy::kBudget || p == Policy::kWeightError || p == Policy::kRandom;
}

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::kUniform:
      return "uniform";
    case Policy::kThreshold:
      return "threshold";
    case Policy::kBudget:
      return "budget";
    case Policy::kWeightError:
      return "weight_error";
    case Policy::kRandom:
      return "random";
  }
  return "?";
}

namespace {

struct Candidate {
  double score;  // gain / cost
  int layer;
  int64_t channel;
  bool operator<(const Candidate& o) const {  // max-heap on score; ties: lower layer, channel first
    if (score != o.score) return score < o.score;
    if (layer != o.layer) return layer > o.layer;
    return channel > o.channel;
  }
};

double cost_of(const LayerTables& t, BudgetUnit unit) {
  return unit == BudgetUnit::kChannels ? 1.0 : t.point_cost_macs;
}

// Gain of giving channel c its (n+1)-th point, normalized per layer.
double gain(const LayerTables& t, int64_t c, int n, bool by_output, double norm) {
  const auto& e = by_output ? t.output_error : t.weight_error;
  double before = e[static_cast<size_t>(c * t.K + n - 1)],
         after = e[static_cast<size_t>(c * t.K + n)];
  return norm > 0 ? (before - after) / norm : 0.0;
}

void greedy_budget(const std::vector<LayerTables>& layers, const std::vector<int>& members,
                   double budget, const AllocationOptions& o, Allocation& a) {
  bool by_output = o.policy == Policy::kBudget;
  std::vector<double> norm(layers.size(), 0.0);
  std::priority_queue<Candidate> heap;
  for (int l : members) {
    const auto& t = layers[static_cast<size_t>(l)];
    const auto& energy = by_output ? t.output_energy : t.weight_energy;
    for (double v : energy) norm[static_cast<size_t>(l)] += v;
    double cost = cost_of(t, o.unit);
    if (t.K < 2) continue;
    for (int64_t c = 0; c < t.c_out; ++c) {
      double g = gain(t, c, 1, by_output, norm[static_cast<size_t>(l)]);
      if (g > 0) heap.push({g / cost, l, c});
    }
  }
  while (!heap.empty()) {
    Candidate cand = heap.top();
    heap.pop();
    const auto& t = layers[static_cast<size_t>(cand.layer)];
    double cost = cost_of(t, o.unit);
    if (a.spent + cost > budget * (1 + 1e-12)) continue;  // a cheaper channel may still fit
    int& n = a.points[static_cast<size_t>(cand.layer)][static_cast<size_t>(cand.channel)];
    a.grant_order[static_cast<size_t>(cand.layer)][static_cast<size_t>(cand.channel * t.K + n)] =
        static_cast<int32_t>(a.granted);
    ++n;
    ++a.granted;
    a.spent += cost;
    if (n < std::min(t.K, o.max_points)) {
      double g = gain(t, cand.channel, n, by_output, norm[static_cast<size_t>(cand.layer)]);
      if (g > 0) heap.push({g / cost, cand.layer, cand.channel});
    }
  }
}

void random_budget(const std::vector<LayerTables>& layers, const std::vector<int>& members,
                   double budget, const AllocationOptions& o, std::mt19937_64& rng, Allocation& a) {
  // All (layer, channel) slots that can still take a point; draw uniformly until nothing fits.
  std::vector<std::pair<int, int64_t>> open;
  for (int l : members) {
    const auto& t = layers[static_cast<size_t>(l)];
    if (std::min(t.K, o.max_points) < 2) continue;
    for (int64_t c = 0; c < t.c_out; ++c) open.emplace_back(l, c);
  }
  while (!open.empty()) {
    uint64_t span = open.size();
    uint64_t limit = UINT64_MAX - UINT64_MAX % span, x;
    do x = rng();
    while (x >= limit);
    size_t i = static_cast<size_t>(x % span);
    auto [l, c] = open[i];
    const auto& t = layers[static_cast<size_t>(l)];
    double cost = cost_of(t, o.unit);
    int& n = a.points[static_cast<size_t>(l)][static_cast<size_t>(c)];
    if (a.spent + cost > budget * (1 + 1e-12) || n >= std::min(t.K, o.max_points)) {
      open[i] = open.back();
      open.pop_back();
      continue;
    }
    a.grant_order[static_cast<size_t>(l)][static_cast<size_t>(c * t.K + n)] =
        static_cast<int32_t>(a.granted);
    ++n;
    ++a.granted;
    a.spent += cost;
  }
}

}  // namespace

Allocation allocate(const std::vector<LayerTables>& layers, const AllocationOptions& o) {
  Allocation a;
  for (const auto& t : layers) {
    a.points.emplace_back(static_cast<size_t>(t.c_out), 1);
    a.grant_order.emplace_back(static_cast<size_t>(t.c_out * t.K), -1);
  }
  bool needs_output =
      o.policy == Policy::kBudget || (o.policy == Policy::kThreshold && !o.threshold_on_weights);
  if (needs_output)
    for (const auto& t : layers)
      if (t.output_error.empty())
        throw ConfigError(std::string("allocation policy '") + policy_name(o.policy) +
                          "' needs calibration statistics (output errors)");

  switch (o.policy) {
    case Policy::kUniform:
      for (size_t l = 0; l < layers.size(); ++l) {
        const auto& t = layers[l];
        int n = std::max(1, std::min({o.uniform_points, t.K, o.max_points}));
        for (int64_t c = 0; c < t.c_out; ++c) {
          for (int k = 1; k < n; ++k)
            a.grant_order[l][static_cast<size_t>(c * t.K + k)] = static_cast<int32_t>(a.granted++);
          a.points[l][static_cast<size_t>(c)] = n;
        }
      }
      break;
    case Policy::kThreshold:
      for (size_t l = 0; l < layers.size(); ++l) {
        const auto& t = layers[l];
        int cap = std::min(t.K, o.max_points);
        const auto& err = o.threshold_on_weights ? t.weight_error : t.output_error;
        const auto& en = o.threshold_on_weights ? t.weight_energy : t.output_energy;
        for (int64_t c = 0; c < t.c_out; ++c) {
          double energy = en[static_cast<size_t>(c)];
          int& n = a.points[l][static_cast<size_t>(c)];
          while (n < cap && energy > 0 &&
                 err[static_cast<size_t>(c * t.K + n - 1)] / energy > o.threshold) {
            a.grant_order[l][static_cast<size_t>(c * t.K + n)] = static_cast<int32_t>(a.granted++);
            ++n;
            a.spent += cost_of(t, o.unit);
          }
        }
      }
      break;
    case Policy::kBudget:
    case Policy::kWeightError:
    case Policy::kRandom: {
      std::mt19937_64 rng(o.seed);
      auto run = [&](const std::vector<int>& members) {
        double total = 0;
        for (int l : members) {
          const auto& t = layers[static_cast<size_t>(l)];
          total += o.unit == BudgetUnit::kChannels
                       ? static_cast<double>(t.c_out)
                       : t.point_cost_macs * static_cast<double>(t.c_out);
        }
        double budget = a.spent + o.budget * total;  // per-layer scope: this layer's share
        a.budget += o.budget * total;
        if (o.policy == Policy::kRandom)
          random_budget(layers, members, budget, o, rng, a);
        else
          greedy_budget(layers, members, budget, o, a);
      };
      if (o.scope == Scope::kNetwork) {
        std::vector<int> all;
        for (size_t l = 0; l < layers.size(); ++l) all.push_back(static_cast<int>(l));
        run(all);
      } else {
        for (size_t l = 0; l < layers.size(); ++l) run({static_cast<int>(l)});
      }
      break;
    }
  }
  return a;
}

}  // namespace mpq::quant
