#include "mpq/ptq/reconstruct.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "mpq/quant/gptq.h"
#include "mpq/store/h5.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/file_lock.h"
#include "mpq/util/progress.h"
#include "mpq/util/sha256.h"
#include "mpq/util/stopwatch.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {
double total(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

LayerOutcome gptq_outcome(const model::Network& net, const model::LayerInfo& L, int bits,
                          const WeightConfig& w, quant::GptqResult&& r,
                          const quant::SecondMoment& stats) {
  const float* fw = net.fp_weight(L.index).data_ptr<float>();
  LayerOutcome o;
  o.quantized = true;
  o.q = std::move(r.q);
  double we = 0, wq = 0;
  for (int64_t i = 0; i < L.c_out * L.d(); ++i) we += static_cast<double>(fw[i]) * fw[i];
  for (float e : o.q.weight_error) wq += e;
  const double oe = total(r.output_energy);
  json& a = o.attrs;
  a["bits"] = bits;
  a["method"] = weight_method_name(w.method);
  a["granularity"] = quant::granularity_name(w.granularity);
  a["gptq_grid"] = w.gptq.grid == quant::RangeMethod::kMse ? "mse" : "max";
  a["gptq_damp"] = w.gptq.damp;
  a["gptq_act_order"] = w.gptq.act_order;
  a["gptq_block"] = w.gptq.block;
  a["gptq_dead_columns"] = r.dead_columns;
  a["gptq_rows_kept_rtn"] = r.rows_kept_rtn;
  a["gptq_seconds"] = r.seconds;
  a["weight_rel_error_final"] = we > 0 ? std::sqrt(wq / we) : 0.0;
  a["output_rel_error_final"] = oe > 0 ? total(r.output_error) / oe : 0.0;
  a["output_rel_error_rtn"] = oe > 0 ? total(r.rtn_output_error) / oe : 0.0;
  a["stats_sampled_rows"] = stats.sampled_rows;
  a["stats_rows_seen"] = stats.rows_seen;
  return o;
}
}  // namespace

std::vector<LayerOutcome> quantize_gptq(const model::Network& net, const std::vector<int>& layers,
                                        const std::vector<int>& bits, const WeightConfig& w,
                                        const std::vector<quant::SecondMoment>& stats) {
  const auto& infos = net.layers();
  std::vector<quant::GptqLayer> in;
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto& L = infos[static_cast<size_t>(layers[k])];
    quant::GptqLayer g;
    g.w = net.fp_weight(L.index).data_ptr<float>();
    g.c_out = L.c_out;
    g.d = L.d();
    g.groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
    g.bits = bits[k];
    g.granularity = w.granularity;
    g.stats = &stats[k];
    in.push_back(g);
  }
  Progress bar("quantize gptq", static_cast<int64_t>(in.size()));
  auto res = quant::quantize_gptq_layers(in, w.gptq, [&] { bar.advance(1); });
  bar.finish();
  std::vector<LayerOutcome> out;
  for (size_t k = 0; k < layers.size(); ++k)
    out.push_back(gptq_outcome(net, infos[static_cast<size_t>(layers[k])], bits[k], w,
                               std::move(res[k]), stats[k]));
  return out;
}

namespace {

namespace fs = std::filesystem;
namespace h5 = store::h5;

bool load_adaround(const std::string& path, const std::string& key, LayerOutcome* out) {
  if (!fs::exists(path)) return false;
  try {
    auto f = h5::File::open_read(path);
    auto a = h5::read_attrs(f, f.id());
    if (a.value("format", "") != "mpq-adaround" || a.value("key", "") != key) return false;
    std::vector<int64_t> shape;
    auto codes = h5::read_dataset<int8_t>(f, f.id(), "codes", &shape);
    auto scales = h5::read_dataset<float>(f, f.id(), "scales");
    auto werr = h5::read_dataset<float>(f, f.id(), "weight_error");
    LayerOutcome o;
    o.quantized = true;
    o.attrs = json::parse(a.at("attrs").get<std::string>());
    auto& q = o.q;
    q.bits = o.attrs.at("bits");
    q.c_out = shape.at(0);
    q.d = shape.at(1);
    q.max_points = 1;
    q.points.assign(static_cast<size_t>(q.c_out), 1);
    q.codes = std::move(codes);
    q.scales = std::move(scales);
    q.weight_error = std::move(werr);
    for (int64_t c = 0; c < q.c_out; ++c) q.point_channel.push_back(static_cast<int32_t>(c));
    if (static_cast<int64_t>(q.scales.size()) != q.c_out) return false;
    o.attrs["adaround_cache_hit"] = true;
    *out = std::move(o);
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or partial: recompute
  }
}

void save_adaround(const std::string& path, const std::string& key, const LayerOutcome& o) {
  fs::create_directories(fs::path(path).parent_path());
  AtomicFile out(path);
  const std::string& tmp = out.tmp();
  {
    {
      auto f = h5::File::create(tmp);
      h5::write_attrs(f, f.id(),
                      {{"format", "mpq-adaround"}, {"key", key}, {"attrs", o.attrs.dump()}});
      h5::write_dataset(f, f.id(), "codes", {o.q.c_out, o.q.d}, o.q.codes.data());
      h5::write_dataset(f, f.id(), "scales", {o.q.c_out}, o.q.scales.data());
      h5::write_dataset(f, f.id(), "weight_error", {o.q.c_out}, o.q.weight_error.data());
      f.flush();
      f.close();
    }
    out.commit();
  }
}

}  // namespace

LayerOutcome quantize_adaround(const model::Network& net, int index, int bits,
                               const WeightConfig& w, const quant::SecondMoment& stats,
                               const std::string& cache_dir, const json& stats_key,
                               const std::string& label,
                               const std::function<quant::LayerInputs()>& data_inputs) {
  const auto& L = net.layers()[static_cast<size_t>(index)];
  const auto& ao = w.adaround;
  const char* grid = ao.grid == quant::RangeMethod::kMse ? "mse" : "max";
  json desc = {{"statistics", stats_key},
               {"layer", index},
               {"bits", bits},
               {"granularity", quant::granularity_name(w.granularity)},
               {"first_layer", layer_rule_name(w.first_layer)},
               {"last_layer", layer_rule_name(w.last_layer)},
               {"adaround",
                {{"iterations", ao.iterations},
                 {"lambda", ao.lambda},
                 {"beta_start", ao.beta_start},
                 {"beta_end", ao.beta_end},
                 {"warmup", ao.warmup},
                 {"lr", ao.lr},
                 {"grid", grid}}},
               {"version", 1}};
  const bool data = ao.objective == quant::AdaroundObjective::kData;
  MPQ_ASSERT(!data || data_inputs, "the data objective needs the layer's inputs");
  if (data) {  // absent for the statistics objective: its keys stay those of earlier versions
    desc["adaround"]["objective"] = quant::adaround_objective_name(ao.objective);
    desc["adaround"]["batch_size"] = ao.batch_size;
    desc["adaround"]["seed"] = ao.seed;
    desc["adaround"]["activation"] = L.activation.name();
  }
  const std::string key = sha256_hex(desc.dump());
  const std::string path = cache_dir.empty() ? "" : cache_dir + "/adaround/" + key + ".h5";
  LayerOutcome o;
  if (!path.empty() && load_adaround(path, key, &o)) return o;
  // Trials running at the same time on other ranks or workers (AdaRound and multipoint on it,
  // W4 and W4A8) need the same layers: the first computes, the others wait and read its result
  // instead of computing it again (measured: two ranks each spent 29 minutes on the same
  // detector layers before this lock).
  std::optional<FileLock> held;
  if (!path.empty()) {
    fs::create_directories(fs::path(path).parent_path());
    held.emplace(path + ".lock");
    if (load_adaround(path, key, &o)) return o;
  }

  const int64_t groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
  const float* fw = net.fp_weight(L.index).data_ptr<float>();
  quant::AdaroundResult r;
  int64_t inputs_used = 0;
  const auto t0 = std::chrono::steady_clock::now();
  if (data) {
    const auto inputs = data_inputs();
    inputs_used = inputs.fp.size(0);
    quant::LayerOp op;
    op.conv = L.kind == model::LayerKind::kConv2d;
    op.stride = L.stride;
    op.padding = L.padding;
    op.dilation = L.dilation;
    op.groups = groups;
    op.activation = L.activation;
    Progress bar(label, ao.iterations * L.c_out);
    r = quant::adaround_layer_data(net.fp_weight(L.index), net.fp_bias(L.index), op, inputs, bits,
                                   w.granularity, stats, ao, [&](int64_t n) { bar.advance(n); });
    bar.finish();
  } else {
    Progress bar(label, ao.iterations * L.c_out);
    r = quant::adaround_layer(fw, L.c_out, L.d(), groups, bits, w.granularity, stats, ao,
                              [&](int64_t n) { bar.advance(n); });
    bar.finish();
  }
  const double seconds = seconds_since(t0);
  o.quantized = true;
  o.q = std::move(r.q);
  double we = 0, wq = 0;
  for (int64_t i = 0; i < L.c_out * L.d(); ++i) we += static_cast<double>(fw[i]) * fw[i];
  for (float e : o.q.weight_error) wq += e;
  const double oe = total(r.output_energy);
  json& a = o.attrs;
  a["bits"] = bits;
  a["method"] = weight_method_name(WeightMethod::kAdaround);  // also as multipoint's first point
  a["adaround_seconds"] = seconds;  // of this computation; a cache hit keeps the stored value
  a["granularity"] = quant::granularity_name(w.granularity);
  a["adaround_grid"] = grid;
  a["adaround_iterations"] = ao.iterations;
  a["adaround_lambda"] = ao.lambda;
  a["adaround_beta"] = json::array({ao.beta_start, ao.beta_end});
  a["adaround_warmup"] = ao.warmup;
  a["adaround_lr"] = ao.lr;
  a["adaround_objective_soft"] = oe > 0 ? r.objective_soft / oe : 0.0;
  a["adaround_undecided"] = r.undecided;
  a["adaround_rows_kept_rtn"] = r.rows_kept_rtn;
  a["adaround_rounded_up"] = r.rounded_up;
  a["adaround_rounded_down"] = r.rounded_down;
  a["weight_rel_error_final"] = we > 0 ? std::sqrt(wq / we) : 0.0;
  a["output_rel_error_final"] = oe > 0 ? total(r.output_error) / oe : 0.0;
  a["output_rel_error_rtn"] = oe > 0 ? total(r.rtn_output_error) / oe : 0.0;
  a["stats_sampled_rows"] = stats.sampled_rows;
  a["stats_rows_seen"] = stats.rows_seen;
  if (data) {
    a["adaround_objective"] = quant::adaround_objective_name(ao.objective);
    a["adaround_batch_size"] = ao.batch_size;
    a["adaround_seed"] = ao.seed;
    a["adaround_activation"] = L.activation.name();
    a["adaround_inputs"] = inputs_used;
    // objective_soft is the data objective's here, relative to the target's energy
    a["adaround_objective_soft"] = r.data_energy > 0 ? r.objective_soft / r.data_energy : 0.0;
    a["adaround_data_error_final"] = r.data_energy > 0 ? r.data_error / r.data_energy : 0.0;
    a["adaround_data_error_rtn"] = r.data_energy > 0 ? r.data_rtn_error / r.data_energy : 0.0;
  }
  if (!path.empty()) save_adaround(path, key, o);
  a["adaround_cache_hit"] = false;
  return o;
}

}  // namespace mpq::ptq
