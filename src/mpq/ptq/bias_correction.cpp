#include "mpq/ptq/bias_correction.h"

#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::ptq {
using nlohmann::json;

namespace {

// Mean input vector per group ([G, d], float64) of the selected layers, seen after the
// optional activation quantizer.
class MeanObserver : public model::LayerInputHook {
 public:
  MeanObserver(const std::vector<model::LayerInfo>& infos, std::vector<bool> observe,
               model::LayerInputHook* inner)
      : infos_(infos),
        observe_(std::move(observe)),
        inner_(inner),
        sums_(infos.size()),
        rows_(infos.size(), 0) {}

  torch::Tensor on_input(int layer, const torch::Tensor& x) override {
    torch::Tensor in = inner_ ? inner_->on_input(layer, x) : x;
    auto i = static_cast<size_t>(layer);
    if (!observe_[i]) return in;
    const auto& L = infos_[i];
    torch::Tensor rows;  // [R, Cin*k]
    if (L.kind == model::LayerKind::kConv2d) {
      auto cols =
          at::im2col(in.to(torch::kFloat32), {L.kh, L.kw}, {L.dilation[0], L.dilation[1]},
                     {L.padding[0], L.padding[1]}, {L.stride[0], L.stride[1]});  // [N, Cin*k, P]
      rows = cols.permute({0, 2, 1}).reshape({-1, cols.size(1)});
    } else {
      rows = in.to(torch::kFloat32).reshape({-1, L.c_in});
    }
    auto s = rows.to(torch::kFloat64).sum(0);
    sums_[i] = sums_[i].defined() ? sums_[i] + s : s;
    rows_[i] += rows.size(0);
    return in;
  }

  /// [G, d] mean of layer i.
  torch::Tensor mean(size_t i) const {
    const auto& L = infos_[i];
    int64_t groups = L.kind == model::LayerKind::kConv2d ? L.groups : 1;
    return (sums_[i] / static_cast<double>(std::max<int64_t>(1, rows_[i]))).view({groups, L.d()});
  }

 private:
  const std::vector<model::LayerInfo>& infos_;
  std::vector<bool> observe_;
  model::LayerInputHook* inner_;
  std::vector<torch::Tensor> sums_;
  std::vector<int64_t> rows_;
};

// Stops each batch's forward pass once the observed layers have seen it.
void run_calibration(model::Network& net, const CalibrationContext& calib,
                     model::LayerInputHook* hook, const std::vector<bool>& observed) {
  run_calibration_batches(net, *calib.data, calib.indices, calib.options, hook, {}, &observed);
}

// Expected output per channel: w_c · μ_{g(c)}; w [C, d], mu [G, d].
torch::Tensor expected_output(const torch::Tensor& w, const torch::Tensor& mu) {
  int64_t C = w.size(0), G = mu.size(0), per = C / G;
  auto w64 = w.reshape({G, per, -1}).to(torch::kFloat64);
  return torch::bmm(w64, mu.unsqueeze(2)).reshape({C});
}

}  // namespace

std::vector<json> correct_biases(model::Network& net, const CalibrationContext& calib,
                                 const std::vector<bool>& weight_quantized,
                                 model::LayerInputHook* activation_hook) {
  const auto& infos = net.layers();
  std::vector<json> out(infos.size(), json::object());
  if (calib.data == nullptr || calib.indices.empty())
    throw ConfigError("bias correction needs calibration data (calibration.size > 0)");
  std::vector<int> todo;
  for (size_t i = 0; i < infos.size(); ++i)
    if (weight_quantized[i]) todo.push_back(static_cast<int>(i));

  // FP means: the FP weights, no activation quantization.
  std::vector<torch::Tensor> quantized_w;
  for (const auto& L : infos) quantized_w.push_back(net.weight(L.index));
  for (const auto& L : infos) net.set_weight(L.index, net.fp_weight(L.index));
  MeanObserver fp(infos, weight_quantized, nullptr);
  run_calibration(net, calib, &fp, weight_quantized);
  for (const auto& L : infos) net.set_weight(L.index, quantized_w[static_cast<size_t>(L.index)]);

  Progress bar("bias correction", static_cast<int64_t>(todo.size()));
  for (int i : todo) {
    std::vector<bool> only(infos.size(), false);
    only[static_cast<size_t>(i)] = true;
    MeanObserver q(infos, only, activation_hook);
    run_calibration(net, calib, &q, only);  // layers after i do not matter for i's mean
    const auto& L = infos[static_cast<size_t>(i)];
    auto wf = net.fp_weight(i).reshape({L.c_out, -1});
    auto wq = net.weight(i).reshape({L.c_out, -1});
    auto shift = expected_output(wf, fp.mean(static_cast<size_t>(i))) -
                 expected_output(wq, q.mean(static_cast<size_t>(i)));
    auto b = net.bias(i).to(torch::kFloat64);
    net.set_bias(i, (b + shift).to(torch::kFloat32));
    double scale = b.abs().mean().item<double>() + 1e-12;
    out[static_cast<size_t>(i)] = {{"bias_shift_mean_abs", shift.abs().mean().item<double>()},
                                   {"bias_shift_rel", shift.abs().mean().item<double>() / scale}};
    bar.advance(1);
  }
  bar.finish();
  return out;
}

}  // namespace mpq::ptq
