#include "mpq/ptq/reconstruct.h"

#include <cmath>

#include "mpq/quant/gptq.h"
#include "mpq/util/progress.h"

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

}  // namespace mpq::ptq
