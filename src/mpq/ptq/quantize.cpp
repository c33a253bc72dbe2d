#include "mpq/ptq/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>

#include "mpq/ptq/baselines.h"
#include "mpq/ptq/reconstruct.h"
#include "mpq/ptq/stats_cache.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

quant::LayerQuantSpec make_spec(const model::Network& net, const model::LayerInfo& L, int bits,
                                const WeightConfig& w, int max_points, quant::FirstPoint first,
                                const quant::SecondMoment* stats) {
  quant::LayerQuantSpec s;
  s.w = net.fp_weight(L.index).data_ptr<float>();
  s.c_out = L.c_out;
  s.d = L.d();
  s.groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
  s.bits = bits;
  s.granularity = w.granularity;
  s.first_point = first;
  s.max_points = max_points;
  s.search = w.search;
  s.weighted = w.weighted && stats != nullptr;
  s.stats = stats;
  s.point_cost_macs =
      L.c_out > 0 ? static_cast<double>(L.macs) / static_cast<double>(L.c_out) : 1.0;
  return s;
}

void set_dequantized(model::Network& net, int index, const quant::QuantizedLayer& q) {
  const auto& w = net.fp_weight(index);
  auto eff = q.effective_weights();  // split columns (OCS) merged back
  net.set_weight(index, torch::from_blob(eff.data(), w.sizes(), torch::kFloat32).clone());
}

std::string histogram(const std::vector<int32_t>& points, int K) {
  std::vector<int64_t> h(static_cast<size_t>(K) + 1, 0);
  for (int32_t n : points) h[static_cast<size_t>(std::min(n, K))]++;
  json j = json::object();
  for (int k = 1; k <= K; ++k)
    if (h[static_cast<size_t>(k)]) j[std::to_string(k)] = h[static_cast<size_t>(k)];
  return j.dump();
}

// Relative errors of a layer: sum of a [C, K] table column over the layer energy.
double column_sum(const std::vector<double>& table, int64_t C, int K, int k) {
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += table[static_cast<size_t>(c * K + k)];
  return s;
}

double sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

json layer_attrs(const quant::QuantizedLayer& q, const quant::LayerTables& t, const WeightConfig& w,
                 double final_we, double final_oe, const quant::SecondMoment* stats) {
  json a;
  double we = sum(t.weight_energy);
  a["bits"] = q.bits;
  a["method"] = weight_method_name(w.method);
  a["granularity"] = quant::granularity_name(w.granularity);
  a["weight_rel_error_1pt"] =
      we > 0 ? std::sqrt(column_sum(t.weight_error, t.c_out, t.K, 0) / we) : 0.0;
  a["weight_rel_error_final"] = we > 0 ? std::sqrt(final_we / we) : 0.0;
  if (stats) {
    double oe = sum(t.output_energy);
    a["output_rel_error_1pt"] = oe > 0 ? column_sum(t.output_error, t.c_out, t.K, 0) / oe : 0.0;
    a["output_rel_error_final"] = oe > 0 ? final_oe / oe : 0.0;
    a["stats_sampled_rows"] = stats->sampled_rows;
    a["stats_rows_seen"] = stats->rows_seen;
  }
  a["points_histogram"] = histogram(q.points, q.max_points);
  if (w.method == WeightMethod::kMultipoint) a["first_point"] = first_point_name(w.first_point);
  return a;
}

quant::FirstPoint first_kind(const WeightConfig& w) {
  return w.method == WeightMethod::kMultipoint && w.first_point == FirstPointMethod::kRtn
             ? quant::FirstPoint::kMaxRange
             : quant::FirstPoint::kOptimal;
}

// Everything the FP calibration statistics depend on (their cache key).
json stats_description(const CalibrationContext& calib) {
  json desc = calib.cache_description;
  desc["batch_size"] = calib.options.batch_size;
  desc["max_bytes_per_layer"] = calib.options.max_bytes_per_layer;
  desc["accumulation"] = "im2col chunks of 64 MiB";  // changes the float32 partial sums
  desc["sample_seed"] = calib.options.seed;
  return desc;
}

// Statistics of `layers` measured on the FP network, through the on-disk cache.
std::vector<quant::SecondMoment> fp_statistics(model::Network& net, const CalibrationContext& calib,
                                               const std::vector<int>& layers, bool* cache_hit,
                                               double* seconds) {
  auto tc = std::chrono::steady_clock::now();
  net.restore_fp();
  json desc = stats_description(calib);
  auto stats = cached_statistics(
      calib.cache_dir, desc, layers,
      [&](const std::vector<int>& missing) {
        return collect_statistics(net, *calib.data, calib.indices, missing, calib.options);
      },
      cache_hit);
  *seconds = since(tc);
  return stats;
}

// AdaRound of `layers`, layer by layer (rows in parallel inside), each through the result cache;
// with quantized-prefix statistics each layer is measured after the earlier ones are quantized.
std::map<int, LayerOutcome> adaround_layers(model::Network& net, const WeightConfig& w,
                                            const CalibrationContext& calib,
                                            const std::vector<int>& layers, int count,
                                            bool* cache_hit, double* calib_seconds) {
  const bool prefix = w.statistics == Statistics::kQuantizedPrefix;
  std::vector<quant::SecondMoment> stats;
  if (!prefix) stats = fp_statistics(net, calib, layers, cache_hit, calib_seconds);
  std::map<int, LayerOutcome> done;
  const std::string of = "/" + std::to_string(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const int i = layers[k];
    quant::SecondMoment one;
    if (prefix) {
      auto tc = std::chrono::steady_clock::now();
      one = collect_statistics(net, *calib.data, calib.indices, {i}, calib.options,
                               "calibrate " + std::to_string(k + 1) + of)[0];
      *calib_seconds += since(tc);
    }
    json key = stats_description(calib);
    key["statistics"] = prefix ? "quantized_prefix" : "fp";
    key["layer_rules"] = {layer_rule_name(w.first_layer), layer_rule_name(w.last_layer)};
    if (prefix) key["prefix_layers"] = json(std::vector<int>(layers.begin(), layers.begin() + k));
    done[i] = quantize_adaround(net, i, layer_bits(w, i, count), w, prefix ? one : stats[k],
                                calib.cache_dir, key, "adaround " + std::to_string(k + 1) + of);
    if (prefix) set_dequantized(net, i, done[i].q);
  }
  return done;
}

}  // namespace

const char* weight_method_name(WeightMethod m) {
  switch (m) {
    case WeightMethod::kRtn:
      return "rtn";
    case WeightMethod::kMse:
      return "mse";
    case WeightMethod::kAciq:
      return "aciq";
    case WeightMethod::kPercentile:
      return "percentile";
    case WeightMethod::kOcs:
      return "ocs";
    case WeightMethod::kBitAlloc:
      return "bit_alloc";
    case WeightMethod::kMultipoint:
      return "multipoint";
    case WeightMethod::kGptq:
      return "gptq";
    case WeightMethod::kAdaround:
      return "adaround";
  }
  return "?";
}

WeightMethod parse_weight_method(const std::string& name) {
  for (auto m :
       {WeightMethod::kRtn, WeightMethod::kMse, WeightMethod::kAciq, WeightMethod::kPercentile,
        WeightMethod::kOcs, WeightMethod::kBitAlloc, WeightMethod::kMultipoint, WeightMethod::kGptq,
                 WeightMethod::kAdaround})
    if (name == weight_method_name(m)) return m;
  throw ConfigError("/weights/method: unknown method '" + name + "'");
}

const char* first_point_name(FirstPointMethod f) {
  switch (f) {
    case FirstPointMethod::kMse:
      return "mse";
    case FirstPointMethod::kRtn:
      return "rtn";
    case FirstPointMethod::kGptq:
      return "gptq";
    case FirstPointMethod::kAdaround:
      return "adaround";
  }
  return "?";
}

FirstPointMethod parse_first_point(const std::string& name) {
  for (auto f : {FirstPointMethod::kMse, FirstPointMethod::kRtn, FirstPointMethod::kGptq,
                 FirstPointMethod::kAdaround})
    if (name == first_point_name(f)) return f;
  throw ConfigError("/weights/multipoint/first_point: unknown first point '" + name +
                    "' (mse, rtn, gptq, adaround)");
}

const char* layer_rule_name(LayerRule r) {
  return r == LayerRule::kQuantize ? "quantize" : r == LayerRule::kFp ? "fp" : "8bit";
}

LayerRule parse_layer_rule(const std::string& name) {
  if (name == "quantize") return LayerRule::kQuantize;
  if (name == "fp") return LayerRule::kFp;
  if (name == "8bit") return LayerRule::k8Bit;
  throw ConfigError("unknown first/last layer rule '" + name + "' (quantize, fp, 8bit)");
}

bool uses_calibration(const WeightConfig& w) {
  // Multipoint always measures output errors (recorded per point and layer), whatever the policy.
  return w.method == WeightMethod::kMultipoint || w.method == WeightMethod::kGptq ||
         w.method == WeightMethod::kAdaround ||
         (w.method == WeightMethod::kBitAlloc && w.bit_alloc_by_output_error);
}

int layer_bits(const WeightConfig& w, int index, int count) {
  auto rule = [&](LayerRule r) {
    return r == LayerRule::kFp ? 0 : r == LayerRule::k8Bit ? 8 : w.bits;
  };
  if (index == 0) return rule(w.first_layer);
  if (index == count - 1) return rule(w.last_layer);
  return w.bits;
}

NetworkQuantization quantize_network(model::Network& net, const WeightConfig& w,
                                     const CalibrationContext& calib, LayerDistribution* dist) {
  const auto& infos = net.layers();
  const int count = static_cast<int>(infos.size());
  NetworkQuantization out;
  out.layers.resize(infos.size());
  std::vector<int> todo;
  for (const auto& L : infos)
    if (layer_bits(w, L.index, count) > 0) todo.push_back(L.index);
  auto t0 = std::chrono::steady_clock::now();

  const bool multipoint = w.method == WeightMethod::kMultipoint;
  const int K = multipoint ? w.allocation.max_points : 1;
  out.used_calibration = uses_calibration(w);
  if (out.used_calibration && (calib.data == nullptr || calib.indices.empty()))
    throw ConfigError(std::string("method '") + weight_method_name(w.method) +
                      "' needs calibration data (calibration.size > 0)");
  if (dist && out.used_calibration && w.statistics != Statistics::kFp)
    throw ConfigError(
        "/calibration/statistics: \"quantized_prefix\" is sequential over layers and cannot run "
        "layer-parallel");

  // Which layers this process handles.
  std::vector<int> mine = todo;
  if (dist) {
    std::vector<double> cost;
    for (int i : todo)
      cost.push_back(static_cast<double>(infos[static_cast<size_t>(i)].params()) * K);
    mine = dist->assign(todo, cost);
  }
  // Runs local work and, when distributed, makes every process agree on failures.
  auto local = [&](const std::function<void()>& f) {
    std::string error;
    bool config_error = false;
    try {
      f();
    } catch (const ConfigError& e) {
      if (!dist) throw;
      error = e.what();
      config_error = true;
    } catch (const std::exception& e) {
      if (!dist) throw;
      error = e.what();
    }
    if (dist) dist->agree(error, config_error);
  };
  auto set_all = [&]() {
    for (int i : todo) set_dequantized(net, i, out.layers[static_cast<size_t>(i)].q);
  };

  if (w.method != WeightMethod::kMse && w.method != WeightMethod::kMultipoint) {
    std::map<int, LayerOutcome> done;
    double calib_seconds = 0;
    local([&] {
      if (w.method == WeightMethod::kAdaround) {
        done = adaround_layers(net, w, calib, mine, count, &out.stats_cache_hit, &calib_seconds);
        return;
      }
      if (w.method == WeightMethod::kGptq && w.statistics == Statistics::kQuantizedPrefix) {
        // Layer by layer, each measured with the earlier layers already quantized.
        for (size_t k = 0; k < mine.size(); ++k) {
          int i = mine[k];
          auto tc = std::chrono::steady_clock::now();
          auto stats = collect_statistics(
              net, *calib.data, calib.indices, {i}, calib.options,
              "calibrate " + std::to_string(k + 1) + "/" + std::to_string(mine.size()));
          calib_seconds += since(tc);
          done[i] = std::move(quantize_gptq(net, {i}, {layer_bits(w, i, count)}, w, stats)[0]);
          set_dequantized(net, i, done[i].q);
        }
        return;
      }
      std::vector<quant::SecondMoment> stats;
      if (out.used_calibration)
        stats = fp_statistics(net, calib, mine, &out.stats_cache_hit, &calib_seconds);
      if (w.method == WeightMethod::kGptq) {
        std::vector<int> bits;
        for (int i : mine) bits.push_back(layer_bits(w, i, count));
        auto outs = quantize_gptq(net, mine, bits, w, stats);
        for (size_t k = 0; k < mine.size(); ++k) done[mine[k]] = std::move(outs[k]);
        return;
      }
      for (size_t k = 0; k < mine.size(); ++k) {
        int i = mine[k];
        const auto& L = infos[static_cast<size_t>(i)];
        int bits = layer_bits(w, i, count);
        if (w.method == WeightMethod::kOcs)
          done[i] = quantize_ocs(net, L, bits, w);
        else if (w.method == WeightMethod::kBitAlloc)
          done[i] = quantize_bit_alloc(net, L, bits, w, stats.empty() ? nullptr : &stats[k]);
        else
          done[i] = quantize_single_point(net, L, bits, w);
      }
    });
    auto all = dist ? dist->share_layers(todo, done) : std::vector<LayerOutcome>{};
    for (size_t k = 0; k < todo.size(); ++k)
      out.layers[static_cast<size_t>(todo[k])] =
          dist ? std::move(all[k]) : std::move(done[todo[k]]);
    set_all();
    out.summary = {{"quant_seconds", since(t0) - calib_seconds},
                   {"calibration_seconds", calib_seconds},
                   {"stats_cache_hit", out.stats_cache_hit}};
    return out;
  }
  quant::AllocationOptions alloc = w.allocation;
  if (!multipoint) {
    alloc.policy = quant::Policy::kUniform;
    alloc.uniform_points = 1;
  }
  double calib_seconds = 0;
  quant::Allocation allocation;
  if (!out.used_calibration || w.statistics == Statistics::kFp) {
    std::vector<quant::SecondMoment> stats;  // for `mine`, in order
    std::map<int, quant::LayerCandidates> cands;
    std::map<int, quant::LayerTables> my_tables;
    local([&] {
      if (out.used_calibration)
        stats = fp_statistics(net, calib, mine, &out.stats_cache_hit, &calib_seconds);
      std::vector<LayerOutcome> firsts;  // GPTQ's first points of `mine`
      if (multipoint && w.first_point == FirstPointMethod::kGptq) {
        std::vector<int> bits;
        for (int i : mine) bits.push_back(layer_bits(w, i, count));
        firsts = quantize_gptq(net, mine, bits, w, stats);
      }
      if (multipoint && w.first_point == FirstPointMethod::kAdaround) {
        json key = stats_description(calib);
        key["statistics"] = "fp";
        key["layer_rules"] = {layer_rule_name(w.first_layer), layer_rule_name(w.last_layer)};
        for (size_t k = 0; k < mine.size(); ++k)
          firsts.push_back(quantize_adaround(net, mine[k], layer_bits(w, mine[k], count), w,
                                             stats[k], calib.cache_dir, key,
                                             "adaround " + std::to_string(k + 1) + "/" +
                                                 std::to_string(mine.size())));
      }
      Progress bar(std::string("quantize ") + weight_method_name(w.method),
                   static_cast<int64_t>(mine.size()));
      for (size_t k = 0; k < mine.size(); ++k) {
        const auto& L = infos[static_cast<size_t>(mine[k])];
        auto spec = make_spec(net, L, layer_bits(w, L.index, count), w, K, first_kind(w),
                              stats.empty() ? nullptr : &stats[k]);
        if (!firsts.empty()) spec.first = &firsts[k].q;
        auto it = cands.emplace(mine[k], quant::LayerCandidates::build(spec)).first;
        my_tables[mine[k]] = it->second.tables();
        bar.advance(1);
      }
      bar.finish();
    });
    std::vector<quant::LayerTables> tables;
    if (dist) {
      tables = dist->share_tables(todo, my_tables);
    } else {
      for (int i : todo) tables.push_back(my_tables[i]);
    }
    allocation = quant::allocate(tables, alloc);  // identical on every process
    std::map<int, LayerOutcome> done;
    local([&] {
      for (size_t k = 0; k < todo.size(); ++k) {
        int i = todo[k];
        auto it = cands.find(i);
        if (it == cands.end()) continue;
        size_t slot = static_cast<size_t>(std::find(mine.begin(), mine.end(), i) - mine.begin());
        LayerOutcome o;
        double fwe = 0, foe = 0;
        o.q = it->second.finalize(allocation.points[k], allocation.grant_order[k],
                                  multipoint ? w.refit : quant::Refit::kNone, &fwe, &foe);
        cands.erase(it);  // the greedy state of the layer is no longer needed
        o.quantized = true;
        o.attrs = layer_attrs(o.q, tables[k], w, fwe, foe, stats.empty() ? nullptr : &stats[slot]);
        done[i] = std::move(o);
      }
    });
    auto all = dist ? dist->share_layers(todo, done) : std::vector<LayerOutcome>{};
    for (size_t k = 0; k < todo.size(); ++k)
      out.layers[static_cast<size_t>(todo[k])] =
          dist ? std::move(all[k]) : std::move(done[todo[k]]);
    set_all();
  } else {
    // Quantized prefix: layer by layer, statistics measured with the earlier layers quantized.
    quant::AllocationOptions per_layer = alloc;
    per_layer.scope = quant::Scope::kLayer;
    for (size_t k = 0; k < todo.size(); ++k) {
      int i = todo[k];
      const auto& L = infos[static_cast<size_t>(i)];
      auto tc = std::chrono::steady_clock::now();
      auto stats = collect_statistics(
          net, *calib.data, calib.indices, {i}, calib.options,
          "calibrate " + std::to_string(k + 1) + "/" + std::to_string(todo.size()));
      calib_seconds += since(tc);
      auto spec = make_spec(net, L, layer_bits(w, i, count), w, K, first_kind(w), &stats[0]);
      std::vector<LayerOutcome> first;
      if (w.first_point == FirstPointMethod::kGptq) {
        first = quantize_gptq(net, {i}, {layer_bits(w, i, count)}, w, stats);
        spec.first = &first[0].q;
      } else if (w.first_point == FirstPointMethod::kAdaround) {
        // Not cached: the statistics depend on every earlier layer's multipoint result.
        first.push_back(quantize_adaround(net, i, layer_bits(w, i, count), w, stats[0], "",
                                          json::object(), "adaround"));
        spec.first = &first[0].q;
      }
      auto cand = quant::LayerCandidates::build(spec);
      auto a = quant::allocate({cand.tables()}, per_layer);
      allocation.granted += a.granted;
      allocation.spent += a.spent;
      allocation.budget += a.budget;
      auto& o = out.layers[static_cast<size_t>(i)];
      double fwe = 0, foe = 0;
      o.q = cand.finalize(a.points[0], a.grant_order[0], w.refit, &fwe, &foe);
      o.quantized = true;
      o.attrs = layer_attrs(o.q, cand.tables(), w, fwe, foe, &stats[0]);
      set_dequantized(net, i, o.q);
    }
  }
  std::vector<int32_t> all_points;
  for (const auto& o : out.layers)
    if (o.quantized) all_points.insert(all_points.end(), o.q.points.begin(), o.q.points.end());
  out.summary = {{"quant_seconds", since(t0) - calib_seconds},
                 {"calibration_seconds", calib_seconds},
                 {"stats_cache_hit", out.stats_cache_hit},
                 {"allocation_policy", multipoint ? quant::policy_name(alloc.policy) : "none"},
                 {"allocation_granted", allocation.granted},
                 {"allocation_spent", allocation.spent},
                 {"allocation_budget", allocation.budget},
                 {"points_histogram", histogram(all_points, K)}};
  return out;
}

}  // namespace mpq::ptq
