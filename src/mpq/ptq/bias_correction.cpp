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
    if (L.kind == model::LayerKind::kConv2d) {
      // The im2col row sum without im2col (which needs Cin*k*P floats per image: 5.5 GB in
      // float64 for one 112x112 depthwise layer of EfficientNet-Lite at batch 64): the entry of
      // offset (ky, kx) of channel c summed over all patches is the sum of the padded input on
      // the strided grid starting at (ky*dh, kx*dw). Column order (c, ky, kx), as im2col's.
      auto xp = at::constant_pad_nd(in.to(torch::kFloat32),
                                    {L.padding[1], L.padding[1], L.padding[0], L.padding[0]});
      const int64_t oh = (xp.size(2) - L.dilation[0] * (L.kh - 1) - 1) / L.stride[0] + 1;
      const int64_t ow = (xp.size(3) - L.dilation[1] * (L.kw - 1) - 1) / L.stride[1] + 1;
      auto s = torch::empty({xp.size(1), L.kh, L.kw}, torch::kFloat64);
      for (int64_t ky = 0; ky < L.kh; ++ky)
        for (int64_t kx = 0; kx < L.kw; ++kx) {
          const int64_t y0 = ky * L.dilation[0], x0 = kx * L.dilation[1];
          auto grid = xp.slice(2, y0, y0 + (oh - 1) * L.stride[0] + 1, L.stride[0])
                          .slice(3, x0, x0 + (ow - 1) * L.stride[1] + 1, L.stride[1]);
          s.select(1, ky).select(1, kx).copy_(grid.sum({0, 2, 3}, false, torch::kFloat64));
        }
      add(i, s.reshape({-1}), xp.size(0) * oh * ow);
    } else {
      auto rows = in.to(torch::kFloat32).reshape({-1, L.c_in});
      add(i, rows.to(torch::kFloat64).sum(0), rows.size(0));
    }
    return in;
  }

  void add(size_t i, const torch::Tensor& s, int64_t rows) {
    sums_[i] = sums_[i].defined() ? sums_[i] + s : s;
    rows_[i] += rows;
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
