#include "mpq/model/export_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"

namespace mpq::model {
namespace {

std::vector<torch::Tensor> simulate(Network& net, LayerInputHook* sim_hook,
                                    const torch::Tensor& x) {
  HookScope scope(sim_hook);
  std::vector<torch::Tensor> t;
  collect_tensors(net.run(x), t);
  return t;
}

// A check that failed its bound: tells an export that computes something else from a network
// that float32 rounding alone moves that much on these inputs (a deep random network evaluated
// on inputs unlike those its BatchNorm statistics came from can be chaotic: issue 34 item 2).
// Fills r.check_repeat_diff (the simulation run twice: a model that is not a function of its
// input differs) and r.rounding_sensitivity (the simulation on the batch perturbed by a relative
// kRoundingProbe, about the error float32 accumulation makes in a layer); the check is
// inconclusive when the simulation is deterministic and that perturbation moves it by at least
// a tenth of the export's difference.
void classify_failed_check(ExportResult& r, Network& net, LayerInputHook* sim_hook,
                           const torch::Tensor& x, const std::vector<torch::Tensor>& sim_out,
                           double bound) {
  r.check_repeat_diff = relative_change(simulate(net, sim_hook, x), sim_out);
  if (r.check_repeat_diff > bound) return;
  torch::manual_seed(4321);
  auto noise = torch::randn(x.sizes(), x.options());
  r.rounding_sensitivity =
      relative_change(simulate(net, sim_hook, x + x.abs() * noise * kRoundingProbe), sim_out);
  r.check_inconclusive = 10 * r.rounding_sensitivity >= r.relative_diff;
}

// Saves `frozen` to path through a temporary name (the source archive's metadata travels with
// it as the mpq_meta.json extra file) and compares the reloaded file with the simulated network
// on the check batch (calibration images, else a seeded random batch). With bound > 0 a
// difference beyond it is classified (classify_failed_check).
}  // namespace

ExportResult save_and_check(torch::jit::Module& frozen, Network& net, const std::string& path,
                            LayerInputHook* sim_hook, const torch::Tensor& check_images,
                            double bound) {
  frozen.get_method("forward").graph()->lint();
  {
    AtomicFile out(path);
    try {
      frozen.save(out.tmp(), {{"mpq_meta.json", net.meta()}});
    } catch (const c10::Error& e) {
      throw InputError(path + ": cannot write exported model: " + e.what_without_backtrace());
    }
    out.commit();
  }

  ExportResult r;
  r.path = path;
  auto reloaded = torch::jit::load(path);
  reloaded.eval();
  torch::manual_seed(1234);
  const bool list = net.input_kind() == InputKind::kTensorList;
  std::vector<int64_t> shape = {list ? 2 : 64};
  shape.insert(shape.end(), net.input_shape().begin(), net.input_shape().end());
  // Detectors take images in [0, 1]; classifiers get normalized-like values.
  r.check_on_images = check_images.defined() && check_images.dim() == 4 && !list;
  auto x = r.check_on_images ? check_images : list ? torch::rand(shape) : torch::randn(shape);
  r.check_inputs = x.size(0);
  torch::NoGradGuard ng;
  c10::IValue out_a;
  try {
    if (list) {
      std::vector<torch::Tensor> images;
      for (int64_t i = 0; i < x.size(0); ++i) images.push_back(x[i]);
      out_a = reloaded.forward({c10::IValue(images)});
    } else {
      out_a = reloaded.forward({x});
    }
  } catch (const std::exception& e) {
    // E.g. onednn refusing a requantization whose scales underflow. Keep no file that fails.
    std::filesystem::remove(path);
    std::string msg = e.what();
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    const auto nl = msg.rfind('\n');
    throw InputError(path + ": the exported model fails on a probe batch (" +
                     (nl == std::string::npos ? msg : msg.substr(nl + 1)) + "); not written");
  }
  c10::IValue out_b;
  {
    HookScope scope(sim_hook);
    out_b = net.run(x);
  }
  // Compare every tensor of the two outputs (logits; or a detector's boxes, scores, labels).
  std::vector<torch::Tensor> ta, tb;
  collect_tensors(out_a, ta);
  collect_tensors(out_b, tb);
  bool same_shapes = ta.size() == tb.size();
  for (size_t i = 0; same_shapes && i < ta.size(); ++i)
    same_shapes = ta[i].sizes() == tb[i].sizes();
  if (!same_shapes) {
    // A detector whose tiny numeric differences moved a box across the score threshold or NMS.
    r.max_abs_diff_vs_simulated = std::numeric_limits<double>::infinity();
    r.argmax_agreement = 0;
    return r;
  }
  for (size_t i = 0; i < ta.size(); ++i) {
    if (ta[i].numel() == 0) continue;
    auto fa = ta[i].to(torch::kFloat64), fb = tb[i].to(torch::kFloat64);
    r.max_abs_diff_vs_simulated =
        std::max(r.max_abs_diff_vs_simulated, (fa - fb).abs().max().item<double>());
    r.max_abs_output = std::max(r.max_abs_output, fb.abs().max().item<double>());
  }
  if (!list && ta.size() == 1 && ta[0].dim() == 2)
    r.argmax_agreement =
        ta[0].argmax(1).eq(tb[0].argmax(1)).to(torch::kFloat64).mean().item<double>();
  r.relative_diff = r.max_abs_diff_vs_simulated / std::max(r.max_abs_output, 1e-30);
  if (bound > 0 && r.relative_diff > bound) classify_failed_check(r, net, sim_hook, x, tb, bound);
  return r;
}

void refuse_if_different(const ExportResult& r, double bound) {
  if (std::isinf(r.max_abs_diff_vs_simulated) || r.relative_diff <= bound) return;
  char buf[480];
  const char* inputs = r.check_on_images ? "images" : "random inputs";
  const auto n = static_cast<long long>(r.check_inputs);
  if (r.check_inconclusive) {
    std::snprintf(buf, sizeof buf,
                  "%s: export check inconclusive: the exported model differs from the trial's by "
                  "%.3g of the outputs' largest magnitude (%.3g) on %lld %s, but a %.0e relative "
                  "perturbation of the inputs moves the trial's own outputs by %.3g: the network "
                  "amplifies float32 rounding on these inputs, so no float32 reordering can match "
                  "closer (kept; a random network evaluated on inputs unlike its BatchNorm "
                  "statistics' is the usual cause)",
                  r.path.c_str(), r.relative_diff, r.max_abs_output, n, inputs, kRoundingProbe,
                  r.rounding_sensitivity);
    warn(buf);
    return;
  }
  std::filesystem::remove(r.path);
  std::snprintf(buf, sizeof buf,
                ": the exported model's outputs differ from the trial's by %.3g of their largest "
                "magnitude (%.3g; bound %.0e) on %lld %s; not written (%s)",
                r.relative_diff, r.max_abs_output, bound, n, inputs,
                r.check_repeat_diff > bound
                    ? "the trial's own outputs change between two runs on the same inputs: is "
                      "dropout or noise active in eval mode?"
                    : "float32 rounding does not explain it: the expanded graph computes "
                      "something else; please report it with the model");
  throw InputError(r.path + buf);
}

}  // namespace mpq::model
