// Test helper: runs one of mpq's layer quantizers on a layer given in an HDF5 file, so that the
// Python references in tests/integration (gptq_reference.py) can check it on layers they make.
//
//   mpq_layer_tool gptq IN.h5 OUT.h5
//   mpq_layer_tool adaround IN.h5 OUT.h5
//   mpq_layer_tool adaround_data IN.h5 OUT.h5
//   mpq_layer_tool gptq_feedback IN.h5 OUT.h5
//
// IN:  datasets w float32 [C, d], sigma float32/float64 [G, d, d] (Σ per group);
//      attrs bits, granularity ("per_channel" | "per_layer"), grid ("max" | "mse"), damp,
//      act_order (0/1), block.
//      adaround: attrs bits, granularity, grid, iterations, lambda, beta_start, beta_end,
//      warmup, lr instead of the GPTQ ones.
//      adaround_data (the data objective, a conv): w float32 [C, C_in / groups, kh, kw], bias
//      [C], x_fp and x_q float32 [N, C_in, H, W], sigma as above (comparison errors only);
//      attrs as adaround plus padding, groups, activation ("none", "relu" or the clip's max as
//      a number), batch_size, seed.
//      gptq_feedback: as gptq plus points int32 [C] (points of each channel, >= 1): multipoint on
//      GPTQ's first point with that many greedy points per channel, then gptq_feedback.
// OUT: codes int8 [C, d], scales float32 [C], output_error, rtn_output_error float64 [C];
//      gptq_feedback: codes [P, d] and scales [P] of all points (channel-major), points [C],
//      codes_before [P, d], output_error_before and output_error [C], attr rows_kept.
//      adaround also attrs objective_soft, undecided, rows_kept_rtn; adaround_data also
//      data_error, data_rtn_error, data_energy.
// Exit 2 on usage errors, 1 on anything else, with one line on stderr.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "mpq/quant/adaround.h"
#include "mpq/quant/gptq.h"
#include "mpq/quant/multipoint_layer.h"
#include "mpq/store/h5.h"

namespace {

mpq::quant::AdaroundOptions adaround_options(const nlohmann::json& a) {
  using namespace mpq;
  quant::AdaroundOptions o;
  o.iterations = a.at("iterations").get<int64_t>();
  o.lambda = a.at("lambda").get<double>();
  o.beta_start = a.at("beta_start").get<double>();
  o.beta_end = a.at("beta_end").get<double>();
  o.warmup = a.at("warmup").get<double>();
  o.lr = a.at("lr").get<double>();
  o.grid = a.at("grid").get<std::string>() == "mse" ? quant::RangeMethod::kMse
                                                    : quant::RangeMethod::kMax;
  return o;
}

mpq::quant::Granularity granularity_of(const nlohmann::json& a) {
  return a.at("granularity").get<std::string>() == "per_layer"
             ? mpq::quant::Granularity::kPerLayer
             : mpq::quant::Granularity::kPerChannel;
}

mpq::quant::GptqOptions gptq_options(const nlohmann::json& a) {
  using namespace mpq;
  quant::GptqOptions o;
  o.damp = a.at("damp").get<double>();
  o.act_order = a.at("act_order").get<int>() != 0;
  o.block = a.at("block").get<int64_t>();
  o.grid = a.at("grid").get<std::string>() == "mse" ? quant::RangeMethod::kMse
                                                    : quant::RangeMethod::kMax;
  return o;
}

// Σ [G, d, d] of the input file, checked against the layer's [C, d].
mpq::quant::SecondMoment read_sigma(mpq::store::h5::File& in, const std::string& in_path,
                                    int64_t c_out, int64_t d) {
  using namespace mpq;
  std::vector<int64_t> ss;
  auto sigma = store::h5::read_dataset<float>(in, in.id(), "sigma", &ss);
  if (ss.size() != 3 || ss[1] != d || ss[2] != d || c_out % ss[0] != 0)
    throw std::invalid_argument(in_path + ": w [C, d] and sigma [G, d, d] with G dividing C");
  quant::SecondMoment st;
  st.groups = ss[0];
  st.d = d;
  st.data = torch::from_blob(sigma.data(), {ss[0], ss[1], ss[2]}, torch::kFloat32).clone();
  st.rows_seen = 1;
  return st;
}

void write_result(const std::string& out_path, const mpq::quant::AdaroundResult& r) {
  using namespace mpq;
  auto out = store::h5::File::create(out_path);
  const int64_t c = r.q.c_out, d = r.q.d;
  store::h5::write_dataset(out, out.id(), "codes", {c, d}, r.q.codes.data());
  store::h5::write_dataset(out, out.id(), "scales", {c}, r.q.scales.data());
  store::h5::write_dataset(out, out.id(), "output_error", {c}, r.output_error.data());
  store::h5::write_dataset(out, out.id(), "rtn_output_error", {c}, r.rtn_output_error.data());
  store::h5::write_attrs(out, out.id(),
                         {{"objective_soft", r.objective_soft},
                          {"undecided", r.undecided},
                          {"rows_kept_rtn", r.rows_kept_rtn},
                          {"data_error", r.data_error},
                          {"data_rtn_error", r.data_rtn_error},
                          {"data_energy", r.data_energy}});
  out.flush();
}

int run_adaround(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  std::vector<int64_t> ws;
  auto w = store::h5::read_dataset<float>(in, in.id(), "w", &ws);
  auto a = store::h5::read_attrs(in, in.id());
  if (ws.size() != 2) throw std::invalid_argument(in_path + ": w [C, d]");
  auto st = read_sigma(in, in_path, ws[0], ws[1]);
  auto r = quant::adaround_layer(w.data(), ws[0], ws[1], st.groups, a.at("bits").get<int>(),
                                 granularity_of(a), st, adaround_options(a));
  write_result(out_path, r);
  return 0;
}

int run_adaround_data(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  auto tensor = [&](const char* name) {
    std::vector<int64_t> shape;
    auto v = store::h5::read_dataset<float>(in, in.id(), name, &shape);
    return torch::from_blob(v.data(), shape, torch::kFloat32).clone();
  };
  const auto w = tensor("w"), bias = tensor("bias"), x_fp = tensor("x_fp"), x_q = tensor("x_q");
  auto a = store::h5::read_attrs(in, in.id());
  if (w.dim() != 4 || x_fp.dim() != 4 || x_fp.sizes() != x_q.sizes())
    throw std::invalid_argument(in_path + ": w [C, C_in/g, kh, kw], x_fp = x_q [N, C_in, H, W]");
  auto st = read_sigma(in, in_path, w.size(0), w.numel() / w.size(0));
  quant::LayerOp op;
  const int64_t pad = a.at("padding").get<int64_t>();
  op.padding = {pad, pad};
  op.groups = a.at("groups").get<int64_t>();
  const auto& act = a.at("activation");
  if (act.is_number()) {
    op.activation.kind = quant::OutputActivation::Kind::kClip;
    op.activation.max = act.get<double>();
  } else if (act.get<std::string>() == "relu") {
    op.activation.kind = quant::OutputActivation::Kind::kRelu;
  }
  auto o = adaround_options(a);
  o.objective = quant::AdaroundObjective::kData;
  o.batch_size = a.at("batch_size").get<int64_t>();
  o.seed = a.at("seed").get<uint64_t>();
  auto r = quant::adaround_layer_data(w, bias, op, {x_fp, x_q}, a.at("bits").get<int>(),
                                      granularity_of(a), st, o);
  write_result(out_path, r);
  return 0;
}

int run_gptq(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  std::vector<int64_t> ws;
  auto w = store::h5::read_dataset<float>(in, in.id(), "w", &ws);
  if (ws.size() != 2)
    throw std::invalid_argument(in_path + ": w [C, d] and sigma [G, d, d] with G dividing C");
  auto st = read_sigma(in, in_path, ws[0], ws[1]);
  auto a = store::h5::read_attrs(in, in.id());
  auto r = quant::quantize_gptq_layer(w.data(), ws[0], ws[1], st.groups, a.at("bits").get<int>(),
                                      granularity_of(a), st, gptq_options(a));
  auto out = store::h5::File::create(out_path);
  store::h5::write_dataset(out, out.id(), "codes", {ws[0], ws[1]}, r.q.codes.data());
  store::h5::write_dataset(out, out.id(), "scales", {ws[0]}, r.q.scales.data());
  store::h5::write_dataset(out, out.id(), "output_error", {ws[0]}, r.output_error.data());
  store::h5::write_dataset(out, out.id(), "rtn_output_error", {ws[0]}, r.rtn_output_error.data());
  store::h5::write_attrs(out, out.id(), {{"rows_kept_rtn", r.rows_kept_rtn}});
  out.flush();
  return 0;
}

int run_gptq_feedback(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  std::vector<int64_t> ws, ps;
  auto w = store::h5::read_dataset<float>(in, in.id(), "w", &ws);
  auto points = store::h5::read_dataset<int32_t>(in, in.id(), "points", &ps);
  if (ws.size() != 2 || ps.size() != 1 || ps[0] != ws[0])
    throw std::invalid_argument(in_path + ": w [C, d] and points [C]");
  auto st = read_sigma(in, in_path, ws[0], ws[1]);
  auto a = store::h5::read_attrs(in, in.id());
  const quant::GptqOptions o = gptq_options(a);
  const int bits = a.at("bits").get<int>();
  auto first =
      quant::quantize_gptq_layer(w.data(), ws[0], ws[1], st.groups, bits, granularity_of(a), st, o);
  quant::LayerQuantSpec spec;
  spec.w = w.data();
  spec.c_out = ws[0];
  spec.d = ws[1];
  spec.groups = st.groups;
  spec.bits = bits;
  spec.granularity = granularity_of(a);
  spec.max_points = *std::max_element(points.begin(), points.end());
  spec.stats = &st;
  spec.first = &first.q;
  auto cand = quant::LayerCandidates::build(spec);
  std::vector<int> n(points.begin(), points.end());
  std::vector<int32_t> order(static_cast<size_t>(ws[0] * spec.max_points), -1);
  auto q = cand.finalize(n, order, quant::Refit::kNone, nullptr, nullptr);
  const auto before = q.codes;
  auto fb = quant::gptq_feedback(w.data(), st, o, q);
  auto out = store::h5::File::create(out_path);
  const int64_t P = q.total_points(), d = ws[1];
  store::h5::write_dataset(out, out.id(), "codes", {P, d}, q.codes.data());
  store::h5::write_dataset(out, out.id(), "codes_before", {P, d}, before.data());
  store::h5::write_dataset(out, out.id(), "scales", {P}, q.scales.data());
  store::h5::write_dataset(out, out.id(), "points", {ws[0]}, q.points.data());
  store::h5::write_dataset(out, out.id(), "output_error_before", {ws[0]},
                           fb.output_error_before.data());
  store::h5::write_dataset(out, out.id(), "output_error", {ws[0]}, fb.output_error.data());
  store::h5::write_attrs(out, out.id(), {{"rows_kept", fb.rows_kept}});
  out.flush();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc == 4 ? argv[1] : "";
  if (what != "gptq" && what != "adaround" && what != "adaround_data" && what != "gptq_feedback") {
    std::fprintf(stderr,
                 "usage: mpq_layer_tool gptq|adaround|adaround_data|gptq_feedback IN.h5 OUT.h5\n");
    return 2;
  }
  try {
    if (what == "adaround_data") return run_adaround_data(argv[2], argv[3]);
    if (what == "gptq_feedback") return run_gptq_feedback(argv[2], argv[3]);
    return what == "gptq" ? run_gptq(argv[2], argv[3]) : run_adaround(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpq_layer_tool: %s\n", e.what());
    return 1;
  }
}
