#include "mpq/model/nms.h"

#include <dlfcn.h>
#include <torch/library.h>

#include <filesystem>
#include <mutex>

#include "mpq/util/error.h"

namespace mpq::model {

torch::Tensor nms(const torch::Tensor& dets, const torch::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4, "nms: boxes must be [N, 4]");
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0), "nms: scores must be [N]");
  if (dets.numel() == 0) return torch::empty({0}, torch::kInt64);
  auto d = dets.to(scores.scalar_type()).contiguous();
  auto x1 = d.select(1, 0).contiguous(), y1 = d.select(1, 1).contiguous();
  auto x2 = d.select(1, 2).contiguous(), y2 = d.select(1, 3).contiguous();
  auto areas = ((x2 - x1) * (y2 - y1)).contiguous();
  auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t n = dets.size(0);
  auto keep = torch::empty({n}, torch::kInt64);
  int64_t kept = 0;
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "mpq_nms", [&] {
    const scalar_t *px1 = x1.data_ptr<scalar_t>(), *py1 = y1.data_ptr<scalar_t>();
    const scalar_t *px2 = x2.data_ptr<scalar_t>(), *py2 = y2.data_ptr<scalar_t>();
    const scalar_t* area = areas.data_ptr<scalar_t>();
    const int64_t* ord = order.data_ptr<int64_t>();
    int64_t* k = keep.data_ptr<int64_t>();
    std::vector<uint8_t> suppressed(static_cast<size_t>(n), 0);
    for (int64_t a = 0; a < n; ++a) {
      const int64_t i = ord[a];
      if (suppressed[static_cast<size_t>(i)]) continue;
      k[kept++] = i;
      for (int64_t b = a + 1; b < n; ++b) {
        const int64_t j = ord[b];
        if (suppressed[static_cast<size_t>(j)]) continue;
        const scalar_t w =
            std::max(static_cast<scalar_t>(0), std::min(px2[i], px2[j]) - std::max(px1[i], px1[j]));
        const scalar_t h =
            std::max(static_cast<scalar_t>(0), std::min(py2[i], py2[j]) - std::max(py1[i], py1[j]));
        const scalar_t inter = w * h;
        const scalar_t iou = inter / (area[i] + area[j] - inter);
        if (iou > iou_threshold) suppressed[static_cast<size_t>(j)] = 1;
      }
    }
  });
  return keep.narrow(0, 0, kept);
}

namespace {

std::mutex g_mu;
std::string g_in_use;  // "" | "mpq" | "torchvision"
std::string g_description;
std::unique_ptr<torch::Library> g_library;  // our registration, kept for the process

torch::Tensor box_iou_rotated_op(torch::Tensor, torch::Tensor) {
  throw InputError(
      "torchvision::box_iou_rotated: rotated boxes are not among mpq's own detection operators "
      "(set model.detection_ops = \"torchvision\" to use torchvision's)");
}

torch::Tensor nms_op(torch::Tensor dets, torch::Tensor scores, double iou_threshold) {
  return nms(dets, scores, iou_threshold);
}

std::string torchvision_library() {
  const char* env = std::getenv("MPQ_TORCHVISION_OPS");
  if (env && *env) return env;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/usr/lib/python3/dist-packages/torchvision", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("_C.", 0) == 0 && name.size() > 3 && name.substr(name.size() - 3) == ".so")
      return e.path().string();
  }
  return "";
}

}  // namespace

void ensure_nms_registered() {
  if (detection_ops_in_use().empty()) provide_detection_ops("mpq");
}

std::string detection_ops_in_use() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_description;
}

void provide_detection_ops(const std::string& choice) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (!g_in_use.empty()) {
    if (g_in_use != choice)
      throw ConfigError("/model/detection_ops: this process already uses " + g_description +
                        " for torchvision's operators; \"" + choice +
                        "\" cannot be loaded beside it (one choice per process)");
    return;
  }
  if (choice == "torchvision") {
    const std::string path = torchvision_library();
    if (path.empty())
      throw InputError(
          "torchvision's ops library not found (install python3-torchvision, or set "
          "MPQ_TORCHVISION_OPS to its _C*.so; or use model.detection_ops = \"mpq\")");
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr)
      throw InputError(path + ": cannot load torchvision's ops library (" + dlerror() + ")");
    g_in_use = choice;
    g_description = "torchvision (" + path + ")";
    return;
  }
  if (choice != "mpq") throw ConfigError("/model/detection_ops: unknown choice '" + choice + "'");
  g_library = std::make_unique<torch::Library>(torch::Library::DEF, "torchvision", c10::nullopt,
                                               __FILE__, __LINE__);
  g_library->def("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor", &nms_op);
  // torchvision 0.29's scripted detectors name box_iou_rotated in a branch of box_iou for
  // rotated formats that their forward never takes; TorchScript needs the schema to load them.
  g_library->def("box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor", &box_iou_rotated_op);
  g_in_use = choice;
  g_description = "mpq (own torchvision::nms, torchvision's semantics)";
}

}  // namespace mpq::model
