#include "mpq/report/inspect.h"

#include "mpq/report/table.h"

namespace mpq::report {
using nlohmann::json;

namespace {
std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
  return t.empty() ? "-" : t;
}
std::string human(double v) {
  if (v >= 1e9) return format("%.2fG", v / 1e9);
  if (v >= 1e6) return format("%.2fM", v / 1e6);
  if (v >= 1e3) return format("%.1fk", v / 1e3);
  return format("%.0f", v);
}
// Booleans are stored in HDF5 as int8 0/1 and read back as integers.
bool truthy(const json& obj, const char* key) {
  if (!obj.contains(key)) return false;
  const json& v = obj[key];
  return v.is_boolean() ? v.get<bool>() : (v.is_number() && v.get<double>() != 0);
}
std::string attr_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return format("%.6g", v.get<double>());
  return v.dump();
}
}  // namespace

std::string describe_network(const model::Network& net) {
  Table t({"#", "layer", "kind", "weight", "groups", "input", "params", "MACs"});
  int64_t params = 0, macs = 0;
  for (const auto& L : net.layers()) {
    std::string w = L.kind == model::LayerKind::kLinear
                        ? format("%lldx%lld", (long long)L.c_out, (long long)L.c_in)
                        : format("%lldx%lldx%lldx%lld", (long long)L.c_out,
                                 (long long)(L.c_in / L.groups), (long long)L.kh, (long long)L.kw);
    std::string kind = model::layer_kind_name(L.kind);
    if (L.depthwise()) kind += " (depthwise)";
    t.add_row({std::to_string(L.index), L.name, kind, w, std::to_string(L.groups),
               L.calls ? shape_text(L.input_shape) : "(not executed)", std::to_string(L.params()),
               std::to_string(L.macs)});
    params += L.params();
    macs += L.macs;
  }
  std::string out = format("model %s\nsha256 %s\ninput shape %s (batch 1)\n", net.path().c_str(),
                           net.sha256().c_str(), shape_text(net.input_shape()).c_str());
  out += format("BatchNorm layers: %d before folding, %d after\n\n", net.bn_before_fold(),
                net.bn_after_fold());
  out += t.markdown();
  out +=
      format("\n%zu quantizable layers, %s weights, %s MACs per image\n", net.layers().size(),
             human(static_cast<double>(params)).c_str(), human(static_cast<double>(macs)).c_str());
  if (net.attention_rewritten() > 0)
    out += format("%d fused attention operator(s) rewritten into linear layers (q/k/v/out_proj)\n",
                  net.attention_rewritten());
  const double fp = static_cast<double>(net.unquantized_weight_count());
  const double ran = static_cast<double>(net.executed_layer_weights());
  if (!net.unquantized_ops().empty()) {
    Table ft({"operator", "module", "weights"});
    for (const auto& op : net.unquantized_ops())
      ft.add_row({op.op, op.name.empty() ? "-" : op.name, std::to_string(op.weights)});
    out +=
        "\nweights mpq does not quantize (they stay in full precision; their MACs are not "
        "counted above)\n\n" +
        ft.markdown();
  }
  if (params > static_cast<int64_t>(ran))
    out += format("\n%s weights of layers the probe never ran are not counted in the coverage\n",
                  human(static_cast<double>(params) - ran).c_str());
  out += format(
      "coverage: %.1f%% of the weights the model runs with are in quantizable layers "
      "(%s of %s)\n",
      fp + ran > 0 ? 100.0 * ran / (fp + ran) : 0.0, human(ran).c_str(), human(fp + ran).c_str());
  return out;
}

std::string check_folding(model::Network& net, int samples, double* max_rel) {
  auto original = model::load_archive(net.path());
  original.eval();
  torch::NoGradGuard ng;
  torch::manual_seed(0);
  std::vector<int64_t> shape = {samples};
  shape.insert(shape.end(), net.input_shape().begin(), net.input_shape().end());
  auto x = torch::randn(shape);
  auto out = original.forward({x});
  torch::Tensor ref = out.isTensor() ? out.toTensor() : out.toTupleRef().elements()[0].toTensor();
  auto got = net.forward(x);
  double diff = (got - ref).abs().max().item<double>();
  double rel = diff / std::max(1e-30, ref.abs().max().item<double>());
  if (max_rel) *max_rel = rel;
  return format("BN folding check: max |diff| %.3g (relative %.3g) on %d random inputs\n", diff,
                rel, samples);
}

std::string describe_trial(const std::string& path, const store::TrialRecord& r) {
  std::string out = format("trial file %s\ntrial id   %s\nstatus     complete\n", path.c_str(),
                           r.trial_id.c_str());
  const json& w = r.config["weights"];
  out += format("weights    %s, %d bits, %s\n", w.value("method", "?").c_str(), w.value("bits", 0),
                w.value("granularity", "?").c_str());
  const json& m = r.manifest;
  out += format("model      %s (sha256 %.16s...)\n", m.value("model_path", "?").c_str(),
                m.value("model_sha256", "").c_str());
  out += format("data       %s\n", m.value("dataset_description", "?").c_str());
  out += format("code       %s%s, torch %s, hdf5 %s, %s, %lld threads on %s\n",
                m.value("git_commit", "?").substr(0, 12).c_str(),
                truthy(m, "git_dirty") ? "-dirty" : "", m.value("torch_version", "?").c_str(),
                m.value("hdf5_version", "?").c_str(), m.value("mpi_version", "?").c_str(),
                (long long)m.value("threads", 0), m.value("host", "?").c_str());
  out += format("time       %s .. %s\n\nmetrics\n", m.value("start_time", "?").c_str(),
                m.value("end_time", "?").c_str());
  Table mt({"metric", "value"});
  for (const auto& [k, v] : r.metrics.items()) mt.add_row({k, attr_text(v)});
  out += mt.markdown();
  Table lt({"#", "layer", "bits", "points", "extra", "rel. weight error"});
  for (const auto& L : r.layers) {
    const json& a = L.attrs;
    bool q = truthy(a, "quantized");
    lt.add_row({std::to_string(L.index), a.value("name", "?"),
                q ? std::to_string(a.value("bits", 0)) : "FP",
                q ? std::to_string(a.value("total_points", int64_t{0})) : "-",
                q ? std::to_string(a.value("extra_points", int64_t{0})) : "-",
                q ? format("%.4f", a.value("weight_rel_error", 0.0)) : "-"});
  }
  out += "\nlayers\n" + lt.markdown();
  return out;
}

}  // namespace mpq::report
