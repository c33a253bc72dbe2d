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
#include "mpq/util/stopwatch.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {

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

// weights.multipoint.gptq_feedback (gptq.h): re-rounds a finalized multipoint-on-GPTQ layer so
// the later columns absorb the error of all of a channel's points; returns the final weight and
// output errors (sums over channels) and records the feedback in the layer's attributes.
void apply_gptq_feedback(const model::Network& net, int index, const WeightConfig& w,
                         const quant::SecondMoment& stats, const quant::LayerTables& t,
                         LayerOutcome& o, double* fwe, double* foe) {
  const float* wp = net.fp_weight(index).data_ptr<float>();
  auto fb = quant::gptq_feedback(wp, stats, w.gptq, o.q);
  *fwe = quant::layer_weight_sq_error(wp, o.q);
  *foe = sum(fb.output_error);
  const double oe = sum(t.output_energy);
  o.attrs["gptq_feedback_rows_kept"] = fb.rows_kept;
  o.attrs["output_rel_error_before_feedback"] = oe > 0 ? sum(fb.output_error_before) / oe : 0.0;
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
  *seconds = seconds_since(tc);
  return stats;
}

// AdaRound of `layers`, layer by layer (rows in parallel inside), each through the result cache;
// with quantized-prefix statistics each layer is measured after the earlier ones are quantized.
// The data objective captures each layer's inputs twice, in the FP network and with the earlier
// layers of `layers` quantized (their AdaRound results); `stats` (FP, may be empty: then
// measured) serves the comparison errors.
std::map<int, LayerOutcome> adaround_layers(model::Network& net, const WeightConfig& w,
                                            const CalibrationContext& calib,
                                            const std::vector<int>& layers, int count,
                                            std::vector<quant::SecondMoment> stats, bool* cache_hit,
                                            double* calib_seconds) {
  const bool prefix = w.statistics == Statistics::kQuantizedPrefix;
  const bool data = w.adaround.objective == quant::AdaroundObjective::kData;
  if (!prefix && stats.empty()) stats = fp_statistics(net, calib, layers, cache_hit, calib_seconds);
  std::map<int, LayerOutcome> done;
  const std::string of = "/" + std::to_string(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const int i = layers[k];
    const std::string step = std::to_string(k + 1) + of;
    quant::SecondMoment one;
    if (prefix) {
      auto tc = std::chrono::steady_clock::now();
      one = collect_statistics(net, *calib.data, calib.indices, {i}, calib.options,
                               "calibrate " + step)[0];
      *calib_seconds += seconds_since(tc);
    }
    json key = stats_description(calib);
    key["statistics"] = prefix ? "quantized_prefix" : "fp";
    key["layer_rules"] = {layer_rule_name(w.first_layer), layer_rule_name(w.last_layer)};
    if (prefix || data)
      key["prefix_layers"] = json(std::vector<int>(layers.begin(), layers.begin() + k));
    std::function<quant::LayerInputs()> inputs;
    if (data)
      inputs = [&] {
        auto tc = std::chrono::steady_clock::now();
        quant::LayerInputs in;
        net.restore_fp();
        in.fp = capture_layer_inputs(net, *calib.data, calib.indices, i, calib.options,
                                     "inputs fp " + step);
        for (size_t j = 0; j < k; ++j) set_dequantized(net, layers[j], done[layers[j]].q);
        in.quantized = capture_layer_inputs(net, *calib.data, calib.indices, i, calib.options,
                                            "inputs quantized " + step);
        if (in.fp.sizes() != in.quantized.sizes())
          throw InputError("layer " + net.layers()[static_cast<size_t>(i)].name +
                           ": its calibration inputs have another shape once the earlier layers "
                           "are quantized; AdaRound's data objective needs the same inputs");
        *calib_seconds += seconds_since(tc);
        return in;
      };
    done[i] = quantize_adaround(net, i, layer_bits(w, i, count), w, prefix ? one : stats[k],
                                calib.cache_dir, key, "adaround " + step, inputs);
    if (prefix) set_dequantized(net, i, done[i].q);
  }
  if (data) net.restore_fp();
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
    case WeightMethod::kLayerBits:
      return "layer_bits";
  }
  return "?";
}

WeightMethod parse_weight_method(const std::string& name) {
  for (auto m :
       {WeightMethod::kRtn, WeightMethod::kMse, WeightMethod::kAciq, WeightMethod::kPercentile,
        WeightMethod::kOcs, WeightMethod::kBitAlloc, WeightMethod::kMultipoint, WeightMethod::kGptq,
        WeightMethod::kAdaround, WeightMethod::kLayerBits})
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
         w.method == WeightMethod::kAdaround || w.method == WeightMethod::kLayerBits ||
         (w.method == WeightMethod::kBitAlloc && w.bit_alloc_by_output_error);
}

bool uses_adaround_data(const WeightConfig& w) {
  const bool adaround =
      w.method == WeightMethod::kAdaround ||
      (w.method == WeightMethod::kMultipoint && w.first_point == FirstPointMethod::kAdaround);
  return adaround && w.adaround.objective == quant::AdaroundObjective::kData;
}

int layer_bits(const WeightConfig& w, int index, int count) {
  auto rule = [&](LayerRule r) {
    return r == LayerRule::kFp ? 0 : r == LayerRule::k8Bit ? 8 : w.bits;
  };
  if (index == 0) return rule(w.first_layer);
  if (index == count - 1) return rule(w.last_layer);
  return w.bits;
}

namespace {

// What the steps of quantize_network share: the network, the config, which layers this process
// handles, the result being built, and the failure agreement of distributed runs.
struct NetworkRun {
  NetworkRun(model::Network& n, const WeightConfig& wc, const CalibrationContext& c,
             LayerDistribution* d)
      : net(n), w(wc), calib(c), dist(d) {}
  model::Network& net;
  const WeightConfig& w;
  const CalibrationContext& calib;
  LayerDistribution* dist;
  int count = 0;          // layers of the network
  int K = 1;              // points per channel at most
  std::vector<int> todo;  // layers to quantize (not kept FP by the first/last layer rule)
  std::vector<int> mine;  // those this process quantizes
  NetworkQuantization out;
  double calib_seconds = 0;

  const model::LayerInfo& info(int i) const { return net.layers()[static_cast<size_t>(i)]; }
  int bits(int i) const { return layer_bits(w, i, count); }
  std::vector<int> bits_of(const std::vector<int>& layers) const {
    std::vector<int> b;
    for (int i : layers) b.push_back(bits(i));
    return b;
  }
  std::string of(size_t k, size_t n) const {
    return std::to_string(k + 1) + "/" + std::to_string(n);
  }

  // Runs local work and, when distributed, makes every process agree on failures.
  void local(const std::function<void()>& f) {
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
  }

  // Every process gets every layer's outcome (`done` holds this process's), and the network
  // takes the dequantized weights.
  void gather(std::map<int, LayerOutcome>& done) {
    auto all = dist ? dist->share_layers(todo, done) : std::vector<LayerOutcome>{};
    for (size_t k = 0; k < todo.size(); ++k)
      out.layers[static_cast<size_t>(todo[k])] =
          dist ? std::move(all[k]) : std::move(done[todo[k]]);
    for (int i : todo) set_dequantized(net, i, out.layers[static_cast<size_t>(i)].q);
  }

  std::vector<quant::SecondMoment> fp_stats(const std::vector<int>& layers) {
    return fp_statistics(net, calib, layers, &out.stats_cache_hit, &calib_seconds);
  }
  // Statistics of one layer with the earlier layers as they are now (quantized prefix).
  std::vector<quant::SecondMoment> prefix_stats(int i, const std::string& label) {
    auto tc = std::chrono::steady_clock::now();
    auto stats = collect_statistics(net, *calib.data, calib.indices, {i}, calib.options, label);
    calib_seconds += seconds_since(tc);
    return stats;
  }
};

// RTN, ACIQ, percentile, OCS, bit allocation, GPTQ and AdaRound: one point per channel, layer
// by layer, no allocation across layers.
void one_point_layers(NetworkRun& r) {
  const WeightConfig& w = r.w;
  std::map<int, LayerOutcome> done;
  r.local([&] {
    if (w.method == WeightMethod::kAdaround) {
      done = adaround_layers(r.net, w, r.calib, r.mine, r.count, {}, &r.out.stats_cache_hit,
                             &r.calib_seconds);
      return;
    }
    if (w.method == WeightMethod::kGptq && w.statistics == Statistics::kQuantizedPrefix) {
      // Layer by layer, each measured with the earlier layers already quantized.
      for (size_t k = 0; k < r.mine.size(); ++k) {
        const int i = r.mine[k];
        auto stats = r.prefix_stats(i, "calibrate " + r.of(k, r.mine.size()));
        done[i] = std::move(quantize_gptq(r.net, {i}, {r.bits(i)}, w, stats)[0]);
        set_dequantized(r.net, i, done[i].q);
      }
      return;
    }
    std::vector<quant::SecondMoment> stats;
    if (r.out.used_calibration) stats = r.fp_stats(r.mine);
    if (w.method == WeightMethod::kGptq || w.method == WeightMethod::kLayerBits) {
      auto outs =
          w.method == WeightMethod::kGptq
              ? quantize_gptq(r.net, r.mine, r.bits_of(r.mine), w, stats)
              : quantize_layer_bits(r.net, r.mine, r.bits_of(r.mine), w, stats, &r.out.summary);
      for (size_t k = 0; k < r.mine.size(); ++k) done[r.mine[k]] = std::move(outs[k]);
      return;
    }
    for (size_t k = 0; k < r.mine.size(); ++k) {
      const int i = r.mine[k];
      const auto& L = r.info(i);
      if (w.method == WeightMethod::kOcs)
        done[i] = quantize_ocs(r.net, L, r.bits(i), w);
      else if (w.method == WeightMethod::kBitAlloc)
        done[i] = quantize_bit_alloc(r.net, L, r.bits(i), w, stats.empty() ? nullptr : &stats[k]);
      else
        done[i] = quantize_single_point(r.net, L, r.bits(i), w);
    }
  });
  r.gather(done);
}

// MSE and multipoint from the FP statistics: candidates (greedy points) per layer on the
// processes that own them, one allocation over the tables of all layers (identical everywhere),
// then each owner finalizes its layers.
quant::Allocation allocated_layers(NetworkRun& r, const quant::AllocationOptions& alloc) {
  const WeightConfig& w = r.w;
  const bool multipoint = w.method == WeightMethod::kMultipoint;
  std::vector<quant::SecondMoment> stats;  // for `mine`, in order
  std::map<int, quant::LayerCandidates> cands;
  std::map<int, quant::LayerTables> my_tables;
  r.local([&] {
    if (r.out.used_calibration) stats = r.fp_stats(r.mine);
    std::vector<LayerOutcome> firsts;  // GPTQ's or AdaRound's first points of `mine`
    if (multipoint && w.first_point == FirstPointMethod::kGptq)
      firsts = quantize_gptq(r.net, r.mine, r.bits_of(r.mine), w, stats);
    if (multipoint && w.first_point == FirstPointMethod::kAdaround &&
        w.adaround.objective == quant::AdaroundObjective::kData) {
      auto m = adaround_layers(r.net, w, r.calib, r.mine, r.count, stats, &r.out.stats_cache_hit,
                               &r.calib_seconds);
      for (int i : r.mine) firsts.push_back(std::move(m[i]));
    } else if (multipoint && w.first_point == FirstPointMethod::kAdaround) {
      json key = stats_description(r.calib);
      key["statistics"] = "fp";
      key["layer_rules"] = {layer_rule_name(w.first_layer), layer_rule_name(w.last_layer)};
      for (size_t k = 0; k < r.mine.size(); ++k)
        firsts.push_back(quantize_adaround(r.net, r.mine[k], r.bits(r.mine[k]), w, stats[k],
                                           r.calib.cache_dir, key,
                                           "adaround " + r.of(k, r.mine.size())));
    }
    Progress bar(std::string("quantize ") + weight_method_name(w.method),
                 static_cast<int64_t>(r.mine.size()));
    for (size_t k = 0; k < r.mine.size(); ++k) {
      const auto& L = r.info(r.mine[k]);
      auto spec = make_spec(r.net, L, r.bits(L.index), w, r.K, first_kind(w),
                            stats.empty() ? nullptr : &stats[k]);
      if (!firsts.empty()) spec.first = &firsts[k].q;
      auto it = cands.emplace(r.mine[k], quant::LayerCandidates::build(spec)).first;
      my_tables[r.mine[k]] = it->second.tables();
      bar.advance(1);
    }
    bar.finish();
  });
  std::vector<quant::LayerTables> tables;
  if (r.dist) {
    tables = r.dist->share_tables(r.todo, my_tables);
  } else {
    for (int i : r.todo) tables.push_back(my_tables[i]);
  }
  quant::Allocation allocation = quant::allocate(tables, alloc);  // identical on every process
  std::map<int, LayerOutcome> done;
  r.local([&] {
    for (size_t k = 0; k < r.todo.size(); ++k) {
      const int i = r.todo[k];
      auto it = cands.find(i);
      if (it == cands.end()) continue;
      const size_t slot =
          static_cast<size_t>(std::find(r.mine.begin(), r.mine.end(), i) - r.mine.begin());
      LayerOutcome o;
      double fwe = 0, foe = 0;
      o.q = it->second.finalize(allocation.points[k], allocation.grant_order[k],
                                multipoint ? w.refit : quant::Refit::kNone, &fwe, &foe);
      cands.erase(it);  // the greedy state of the layer is no longer needed
      o.quantized = true;
      if (w.gptq_feedback) apply_gptq_feedback(r.net, i, w, stats[slot], tables[k], o, &fwe, &foe);
      o.attrs.update(
          layer_attrs(o.q, tables[k], w, fwe, foe, stats.empty() ? nullptr : &stats[slot]));
      done[i] = std::move(o);
    }
  });
  r.gather(done);
  return allocation;
}

// MSE and multipoint on quantized-prefix statistics: layer by layer, each measured with the
// earlier layers already quantized, each allocated on its own (scope: layer).
quant::Allocation prefix_layers(NetworkRun& r, const quant::AllocationOptions& alloc) {
  const WeightConfig& w = r.w;
  quant::AllocationOptions per_layer = alloc;
  per_layer.scope = quant::Scope::kLayer;
  quant::Allocation allocation;
  for (size_t k = 0; k < r.todo.size(); ++k) {
    const int i = r.todo[k];
    auto stats = r.prefix_stats(i, "calibrate " + r.of(k, r.todo.size()));
    auto spec = make_spec(r.net, r.info(i), r.bits(i), w, r.K, first_kind(w), &stats[0]);
    std::vector<LayerOutcome> first;
    if (w.first_point == FirstPointMethod::kGptq) {
      first = quantize_gptq(r.net, {i}, {r.bits(i)}, w, stats);
      spec.first = &first[0].q;
    } else if (w.first_point == FirstPointMethod::kAdaround) {
      // Not cached: the statistics depend on every earlier layer's multipoint result.
      first.push_back(
          quantize_adaround(r.net, i, r.bits(i), w, stats[0], "", json::object(), "adaround"));
      spec.first = &first[0].q;
    }
    auto cand = quant::LayerCandidates::build(spec);
    auto a = quant::allocate({cand.tables()}, per_layer);
    allocation.granted += a.granted;
    allocation.spent += a.spent;
    allocation.budget += a.budget;
    auto& o = r.out.layers[static_cast<size_t>(i)];
    double fwe = 0, foe = 0;
    o.q = cand.finalize(a.points[0], a.grant_order[0], w.refit, &fwe, &foe);
    o.quantized = true;
    if (w.gptq_feedback) apply_gptq_feedback(r.net, i, w, stats[0], cand.tables(), o, &fwe, &foe);
    o.attrs.update(layer_attrs(o.q, cand.tables(), w, fwe, foe, &stats[0]));
    set_dequantized(r.net, i, o.q);
  }
  return allocation;
}

}  // namespace

NetworkQuantization quantize_network(model::Network& net, const WeightConfig& w,
                                     const CalibrationContext& calib, LayerDistribution* dist) {
  const auto t0 = std::chrono::steady_clock::now();
  NetworkRun r(net, w, calib, dist);
  r.count = static_cast<int>(net.layers().size());
  r.out.layers.resize(net.layers().size());
  r.out.used_calibration = uses_calibration(w);
  // A layer the probe never ran (the fallback branch of a scripted nn.MultiheadAttention, whose
  // fused fast path runs instead) has no statistics: methods that need them leave it FP.
  int64_t never_ran = 0;
  for (const auto& L : net.layers()) {
    if (r.bits(L.index) <= 0) continue;
    if (L.calls == 0 && r.out.used_calibration) {
      ++never_ran;
      continue;
    }
    r.todo.push_back(L.index);
  }
  if (never_ran > 0)
    info(std::to_string(never_ran) +
         " layer(s) never ran in the model's probe (a branch not taken, e.g. the fallback of a "
         "scripted nn.MultiheadAttention) and stay FP: '" +
         weight_method_name(w.method) + "' needs their calibration statistics");
  const bool multipoint = w.method == WeightMethod::kMultipoint;
  r.K = multipoint ? w.allocation.max_points : 1;
  if (r.out.used_calibration && (calib.data == nullptr || calib.indices.empty()))
    throw ConfigError(std::string("method '") + weight_method_name(w.method) +
                      "' needs calibration data (calibration.size > 0)");
  if (dist && r.out.used_calibration && w.statistics != Statistics::kFp)
    throw ConfigError(
        "/calibration/statistics: \"quantized_prefix\" is sequential over layers and cannot run "
        "layer-parallel");
  if (dist && w.method == WeightMethod::kLayerBits)
    throw ConfigError(
        "/weights/method: \"layer_bits\" allocates bits over all layers at once and cannot run "
        "layer-parallel");
  if (dist && uses_adaround_data(w))
    throw ConfigError(
        "/weights/adaround/objective: \"data\" is sequential over layers (each layer's inputs "
        "come from the quantized earlier ones) and cannot run layer-parallel");
  r.mine = r.todo;  // which layers this process handles
  if (dist) {
    std::vector<double> cost;
    for (int i : r.todo) cost.push_back(static_cast<double>(r.info(i).params()) * r.K);
    r.mine = dist->assign(r.todo, cost);
  }

  if (w.method != WeightMethod::kMse && !multipoint) {
    one_point_layers(r);
    r.out.summary.update({{"quant_seconds", seconds_since(t0) - r.calib_seconds},
                          {"calibration_seconds", r.calib_seconds},
                          {"stats_cache_hit", r.out.stats_cache_hit},
                          {"layers_not_executed_fp", never_ran}});
    return std::move(r.out);
  }
  quant::AllocationOptions alloc = w.allocation;
  if (!multipoint) {
    alloc.policy = quant::Policy::kUniform;
    alloc.uniform_points = 1;
  }
  const quant::Allocation allocation = !r.out.used_calibration || w.statistics == Statistics::kFp
                                           ? allocated_layers(r, alloc)
                                           : prefix_layers(r, alloc);
  std::vector<int32_t> all_points;
  for (const auto& o : r.out.layers)
    if (o.quantized) all_points.insert(all_points.end(), o.q.points.begin(), o.q.points.end());
  r.out.summary = {{"quant_seconds", seconds_since(t0) - r.calib_seconds},
                   {"calibration_seconds", r.calib_seconds},
                   {"stats_cache_hit", r.out.stats_cache_hit},
                   {"layers_not_executed_fp", never_ran},
                   {"allocation_policy", multipoint ? quant::policy_name(alloc.policy) : "none"},
                   {"allocation_granted", allocation.granted},
                   {"allocation_spent", allocation.spent},
                   {"allocation_budget", allocation.budget},
                   {"points_histogram", histogram(all_points, r.K)}};
  return std::move(r.out);
}

}  // namespace mpq::ptq
