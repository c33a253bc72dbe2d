#include "mpq/ptq/reconstruct.h"

#include <cmath>

#include "mpq/quant/gptq.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {
double total(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
}  // namespace

LayerOutcome quantize_gptq(const model::Network& net, const model::LayerInfo& L, int bits,
                           const WeightConfig& w, const quant::SecondMoment& stats) {
  const int64_t groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
  const float* fw = net.fp_weight(L.index).data_ptr<float>();
  auto r = quant::quantize_gptq_layer(fw, L.c_out, L.d(), groups, bits, w.granularity, stats,
                                      w.gptq);
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

}  // namespace mpq::ptq
