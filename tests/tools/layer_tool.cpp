// Test helper: runs one of mpq's layer quantizers on a layer given in an HDF5 file, so that the
// Python references in tests/integration (gptq_reference.py) can check it on layers they make.
//
//   mpq_layer_tool gptq IN.h5 OUT.h5
//   mpq_layer_tool adaround IN.h5 OUT.h5
//
// IN:  datasets w float32 [C, d], sigma float32/float64 [G, d, d] (Σ per group);
//      attrs bits, granularity ("per_channel" | "per_layer"), grid ("max" | "mse"), damp,
//      act_order (0/1), block.
//      adaround: attrs bits, granularity, grid, iterations, lambda, beta_start, beta_end,
//      warmup, lr instead of the GPTQ ones.
// OUT: codes int8 [C, d], scales float32 [C], output_error, rtn_output_error float64 [C];
//      adaround also attrs objective_soft, undecided, rows_kept_rtn.
// Exit 2 on usage errors, 1 on anything else, with one line on stderr.
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <string>

#include "mpq/quant/adaround.h"
#include "mpq/quant/gptq.h"
#include "mpq/store/h5.h"

namespace {

int run_adaround(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  std::vector<int64_t> ws, ss;
  auto w = store::h5::read_dataset<float>(in, in.id(), "w", &ws);
  auto sigma = store::h5::read_dataset<float>(in, in.id(), "sigma", &ss);
  auto a = store::h5::read_attrs(in, in.id());
  if (ws.size() != 2 || ss.size() != 3 || ss[1] != ws[1] || ss[2] != ws[1] || ws[0] % ss[0] != 0)
    throw std::invalid_argument(in_path + ": w [C, d] and sigma [G, d, d] with G dividing C");
  quant::SecondMoment st;
  st.groups = ss[0];
  st.d = ws[1];
  st.data = torch::from_blob(sigma.data(), {ss[0], ss[1], ss[2]}, torch::kFloat32).clone();
  st.rows_seen = 1;
  quant::AdaroundOptions o;
  o.iterations = a.at("iterations").get<int64_t>();
  o.lambda = a.at("lambda").get<double>();
  o.beta_start = a.at("beta_start").get<double>();
  o.beta_end = a.at("beta_end").get<double>();
  o.warmup = a.at("warmup").get<double>();
  o.lr = a.at("lr").get<double>();
  o.grid = a.at("grid").get<std::string>() == "mse" ? quant::RangeMethod::kMse
                                                    : quant::RangeMethod::kMax;
  auto gran = a.at("granularity").get<std::string>() == "per_layer"
                  ? quant::Granularity::kPerLayer
                  : quant::Granularity::kPerChannel;
  auto r = quant::adaround_layer(w.data(), ws[0], ws[1], ss[0], a.at("bits").get<int>(), gran, st,
                                 o);
  auto out = store::h5::File::create(out_path);
  store::h5::write_dataset(out, out.id(), "codes", {ws[0], ws[1]}, r.q.codes.data());
  store::h5::write_dataset(out, out.id(), "scales", {ws[0]}, r.q.scales.data());
  store::h5::write_dataset(out, out.id(), "output_error", {ws[0]}, r.output_error.data());
  store::h5::write_dataset(out, out.id(), "rtn_output_error", {ws[0]},
                           r.rtn_output_error.data());
  store::h5::write_attrs(out, out.id(),
                         {{"objective_soft", r.objective_soft},
                          {"undecided", r.undecided},
                          {"rows_kept_rtn", r.rows_kept_rtn}});
  out.flush();
  return 0;
}

int run_gptq(const std::string& in_path, const std::string& out_path) {
  using namespace mpq;
  auto in = store::h5::File::open_read(in_path);
  std::vector<int64_t> ws, ss;
  auto w = store::h5::read_dataset<float>(in, in.id(), "w", &ws);
  auto sigma = store::h5::read_dataset<float>(in, in.id(), "sigma", &ss);
  auto a = store::h5::read_attrs(in, in.id());
  if (ws.size() != 2 || ss.size() != 3 || ss[1] != ws[1] || ss[2] != ws[1] || ws[0] % ss[0] != 0)
    throw std::invalid_argument(in_path + ": w [C, d] and sigma [G, d, d] with G dividing C");
  quant::SecondMoment st;
  st.groups = ss[0];
  st.d = ws[1];
  st.data = torch::from_blob(sigma.data(), {ss[0], ss[1], ss[2]}, torch::kFloat32).clone();
  st.rows_seen = 1;
  quant::GptqOptions o;
  o.damp = a.at("damp").get<double>();
  o.act_order = a.at("act_order").get<int>() != 0;
  o.block = a.at("block").get<int64_t>();
  o.grid = a.at("grid").get<std::string>() == "mse" ? quant::RangeMethod::kMse
                                                    : quant::RangeMethod::kMax;
  auto gran = a.at("granularity").get<std::string>() == "per_layer"
                  ? quant::Granularity::kPerLayer
                  : quant::Granularity::kPerChannel;
  auto r = quant::quantize_gptq_layer(w.data(), ws[0], ws[1], ss[0], a.at("bits").get<int>(),
                                      gran, st, o);
  auto out = store::h5::File::create(out_path);
  store::h5::write_dataset(out, out.id(), "codes", {ws[0], ws[1]}, r.q.codes.data());
  store::h5::write_dataset(out, out.id(), "scales", {ws[0]}, r.q.scales.data());
  store::h5::write_dataset(out, out.id(), "output_error", {ws[0]}, r.output_error.data());
  store::h5::write_dataset(out, out.id(), "rtn_output_error", {ws[0]},
                           r.rtn_output_error.data());
  store::h5::write_attrs(out, out.id(), {{"rows_kept_rtn", r.rows_kept_rtn}});
  out.flush();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc == 4 ? argv[1] : "";
  if (what != "gptq" && what != "adaround") {
    std::fprintf(stderr, "usage: mpq_layer_tool gptq|adaround IN.h5 OUT.h5\n");
    return 2;
  }
  try {
    return what == "gptq" ? run_gptq(argv[2], argv[3]) : run_adaround(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpq_layer_tool: %s\n", e.what());
    return 1;
  }
}
