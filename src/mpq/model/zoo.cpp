#include "mpq/model/zoo.h"

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "mpq/model/nms.h"
#include "mpq/util/error.h"

namespace mpq::model {
using torch::jit::Module;

namespace {

// Each module gets a unique class name: TorchScript identifies types by qualified name, and two
// different layer shapes must not share one.
class Builder {
 public:
  Module make(const std::string& kind) {
    Module m(kind + "_" + std::to_string(counter_++));
    m.register_attribute("training", c10::BoolType::get(), true);
    return m;
  }

  Module conv(int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t groups) {
    Module m = make("Conv2d");
    auto w = torch::empty({cout, cin / groups, k, k});
    torch::nn::init::kaiming_normal_(w, 0.0, torch::kFanOut, torch::kReLU);
    m.register_parameter("weight", w, false);
    int64_t pad = k / 2;
    m.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, None, [" +
             std::to_string(stride) + ", " + std::to_string(stride) + "], [" + std::to_string(pad) +
             ", " + std::to_string(pad) + "], [1, 1], " + std::to_string(groups) + ")\n");
    return m;
  }

  Module bn(int64_t c) {
    Module m = make("BatchNorm2d");
    m.register_parameter("weight", torch::ones({c}), false);
    m.register_parameter("bias", torch::zeros({c}), false);
    m.register_buffer("running_mean", torch::zeros({c}));
    m.register_buffer("running_var", torch::ones({c}));
    m.define(R"(
def forward(self, x):
    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, 0.1, 1e-05, False)
)");
    return m;
  }

  Module linear(int64_t in, int64_t out) {
    Module m = make("Linear");
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    m.register_parameter("weight", torch::empty({out, in}).uniform_(-bound, bound), false);
    m.register_parameter("bias", torch::empty({out}).uniform_(-bound, bound), false);
    m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
    return m;
  }

 private:
  int counter_ = 0;
};

int64_t scaled(int64_t c, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::lround(static_cast<double>(c) * width)));
}

Module basic_block(Builder& b, int64_t cin, int64_t cout, int64_t stride) {
  Module m = b.make("BasicBlock");
  m.register_module("conv1", b.conv(cin, cout, 3, stride, 1));
  m.register_module("bn1", b.bn(cout));
  m.register_module("conv2", b.conv(cout, cout, 3, 1, 1));
  m.register_module("bn2", b.bn(cout));
  bool project = stride != 1 || cin != cout;
  if (project) {
    m.register_module("shortcut_conv", b.conv(cin, cout, 1, stride, 1));
    m.register_module("shortcut_bn", b.bn(cout));
  }
  m.define(std::string(R"(
def forward(self, x):
    out = torch.relu(self.bn1.forward(self.conv1.forward(x)))
    out = self.bn2.forward(self.conv2.forward(out))
)") +
           (project ? "    sc = self.shortcut_bn.forward(self.shortcut_conv.forward(x))\n"
                    : "    sc = x\n") +
           "    return torch.relu(out + sc)\n");
  return m;
}

Module inverted_residual(Builder& b, int64_t cin, int64_t cout, int64_t stride, int64_t expand) {
  Module m = b.make("InvertedResidual");
  int64_t hidden = cin * expand;
  std::string body = "\ndef forward(self, x):\n    h = x\n";
  if (expand != 1) {
    m.register_module("expand_conv", b.conv(cin, hidden, 1, 1, 1));
    m.register_module("expand_bn", b.bn(hidden));
    body += "    h = torch.clamp(self.expand_bn.forward(self.expand_conv.forward(h)), 0.0, 6.0)\n";
  }
  m.register_module("dw_conv", b.conv(hidden, hidden, 3, stride, hidden));
  m.register_module("dw_bn", b.bn(hidden));
  m.register_module("project_conv", b.conv(hidden, cout, 1, 1, 1));
  m.register_module("project_bn", b.bn(cout));
  body += "    h = torch.clamp(self.dw_bn.forward(self.dw_conv.forward(h)), 0.0, 6.0)\n";
  body += "    h = self.project_bn.forward(self.project_conv.forward(h))\n";
  body += (stride == 1 && cin == cout) ? "    return x + h\n" : "    return h\n";
  m.define(body);
  return m;
}

Module resnet20(const ArchConfig& cfg, Builder& b) {
  Module net = b.make("ResNet20");
  int64_t c1 = scaled(16, cfg.width), c2 = scaled(32, cfg.width), c3 = scaled(64, cfg.width);
  net.register_module("stem_conv", b.conv(cfg.in_channels, c1, 3, cfg.stem_stride, 1));
  net.register_module("stem_bn", b.bn(c1));
  const int64_t widths[3] = {c1, c2, c3};
  std::string body = R"(
def forward(self, x):
    x = torch.relu(self.stem_bn.forward(self.stem_conv.forward(x)))
)";
  int64_t cin = c1;
  for (int s = 0; s < 3; ++s) {
    Module stage = b.make("Stage");
    std::string sbody = "\ndef forward(self, x):\n";
    for (int k = 0; k < 3; ++k) {
      int64_t stride = (s > 0 && k == 0) ? 2 : 1;
      stage.register_module("block" + std::to_string(k), basic_block(b, cin, widths[s], stride));
      sbody += "    x = self.block" + std::to_string(k) + ".forward(x)\n";
      cin = widths[s];
    }
    sbody += "    return x\n";
    stage.define(sbody);
    std::string name = "stage" + std::to_string(s + 1);
    net.register_module(name, stage);
    body += "    x = self." + name + ".forward(x)\n";
  }
  net.register_module("fc", b.linear(c3, cfg.num_classes));
  body += "    x = torch.mean(x, [2, 3])\n    return self.fc.forward(x)\n";
  net.define(body);
  return net;
}

Module mobilenetv2(const ArchConfig& cfg, Builder& b) {
  Module net = b.make("MobileNetV2");
  // (expansion t, channels c, repeats n, first stride s), as in Sandler et al. Table 2, shortened
  // for 28x28 inputs.
  struct Stage {
    int64_t t, c, n, s;
  };
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 2, 2}, {6, 64, 2, 1}};
  int64_t c0 = scaled(16, cfg.width);
  net.register_module("stem_conv", b.conv(cfg.in_channels, c0, 3, cfg.stem_stride, 1));
  net.register_module("stem_bn", b.bn(c0));
  std::string body = R"(
def forward(self, x):
    x = torch.clamp(self.stem_bn.forward(self.stem_conv.forward(x)), 0.0, 6.0)
)";
  int64_t cin = c0;
  int idx = 0;
  for (const auto& st : stages) {
    int64_t cout = scaled(st.c, cfg.width);
    for (int64_t k = 0; k < st.n; ++k) {
      std::string name = "block" + std::to_string(idx++);
      net.register_module(name, inverted_residual(b, cin, cout, k == 0 ? st.s : 1, st.t));
      body += "    x = self." + name + ".forward(x)\n";
      cin = cout;
    }
  }
  int64_t head = scaled(128, cfg.width);
  net.register_module("head_conv", b.conv(cin, head, 1, 1, 1));
  net.register_module("head_bn", b.bn(head));
  net.register_module("fc", b.linear(head, cfg.num_classes));
  body += R"(    x = torch.clamp(self.head_bn.forward(self.head_conv.forward(x)), 0.0, 6.0)
    x = torch.mean(x, [2, 3])
    return self.fc.forward(x)
)";
  net.define(body);
  return net;
}

Module conv_bias(Builder& b, int64_t cin, int64_t cout, int64_t k) {
  Module m = b.make("Conv2dBias");
  auto w = torch::empty({cout, cin, k, k});
  torch::nn::init::normal_(w, 0.0, 0.01);
  m.register_parameter("weight", w, false);
  m.register_parameter("bias", torch::zeros({cout}), false);
  const std::string pad = std::to_string(k / 2);
  m.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [1, 1], [" +
           pad + ", " + pad + "], [1, 1], 1)\n");
  return m;
}

// SSD anchors (cx, cy, w, h in input pixels) of one feature map: per location, squares of the two
// sizes and the small size stretched to aspect 2 and 1/2.
void add_anchors(std::vector<float>& a, int64_t fmap, double stride, double s1, double s2) {
  const double r = std::sqrt(2.0);
  for (int64_t y = 0; y < fmap; ++y)
    for (int64_t x = 0; x < fmap; ++x) {
      const double cx = (x + 0.5) * stride, cy = (y + 0.5) * stride;
      for (auto [w, h] :
           {std::pair<double, double>{s1, s1}, {s2, s2}, {s1 * r, s1 / r}, {s1 / r, s1 * r}})
        a.insert(a.end(), {static_cast<float>(cx), static_cast<float>(cy), static_cast<float>(w),
                           static_cast<float>(h)});
    }
}

// `torch.foo` as aten::foo (the native resolver) plus `torchvision.foo` as torchvision::foo,
// which the TorchScript printer writes as ops.torchvision.foo (what Python's loader resolves).
struct TorchvisionResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name,
                                                         torch::jit::GraphFunction&,
                                                         const torch::jit::SourceRange&) override {
    if (name == "torch") return std::make_shared<torch::jit::BuiltinModule>("aten");
    if (name == "torchvision") return std::make_shared<torch::jit::BuiltinModule>("torchvision");
    return nullptr;
  }
};

Module ssdlite(const ArchConfig& cfg, Builder& b) {
  const int64_t S = cfg.input_shape.at(1);
  if (S % 32 != 0 || cfg.input_shape.at(2) != S)
    throw ConfigError("ssdlite: input must be square with a side divisible by 32, got " +
                      std::to_string(S));
  Module net = b.make("SsdLite");
  auto c = [&](int64_t v) { return scaled(v, cfg.width); };
  // Backbone: (out channels, stride) per conv+BN+ReLU; feature maps after convs 5, 7 and 8.
  const std::vector<std::pair<int64_t, int64_t>> layers = {{c(24), 2},  {c(48), 2}, {c(48), 1},
                                                           {c(96), 2},  {c(96), 1}, {c(128), 2},
                                                           {c(128), 1}, {c(160), 2}};
  int64_t cin = 3;
  std::string feat = R"(
def features(self, x):
)";
  std::vector<int64_t> fm_channels;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    net.register_module("conv" + n, b.conv(cin, layers[i].first, 3, layers[i].second, 1));
    net.register_module("bn" + n, b.bn(layers[i].first));
    feat += "    x = torch.relu(self.bn" + n + ".forward(self.conv" + n + ".forward(x)))\n";
    if (i == 4 || i == 6 || i == 7) {
      const std::string f = std::to_string(fm_channels.size());
      feat += "    f" + f + " = x\n";
      fm_channels.push_back(layers[i].first);
    }
    cin = layers[i].first;
  }
  const int64_t A = 4, classes = cfg.num_classes;
  for (size_t f = 0; f < fm_channels.size(); ++f) {
    net.register_module("cls" + std::to_string(f), conv_bias(b, fm_channels[f], A * classes, 3));
    net.register_module("box" + std::to_string(f), conv_bias(b, fm_channels[f], A * 4, 3));
  }
  feat += "    n = x.size(0)\n    cls: List[Tensor] = []\n    box: List[Tensor] = []\n";
  for (size_t f = 0; f < fm_channels.size(); ++f) {
    const std::string k = std::to_string(f);
    feat += "    cls.append(self.cls" + k + ".forward(f" + k +
            ").permute(0, 2, 3, 1).reshape(n, -1, " + std::to_string(classes) + "))\n";
    feat += "    box.append(self.box" + k + ".forward(f" + k +
            ").permute(0, 2, 3, 1).reshape(n, -1, 4))\n";
  }
  feat += "    return torch.cat(cls, 1), torch.cat(box, 1)\n";
  net.define(feat);

  std::vector<float> anchors;
  add_anchors(anchors, S / 8, 8.0, S * 0.11, S * 0.19);
  add_anchors(anchors, S / 16, 16.0, S * 0.25, S * 0.375);
  add_anchors(anchors, S / 32, 32.0, S * 0.5, S * 0.75);
  const auto na = static_cast<int64_t>(anchors.size() / 4);
  net.register_buffer("anchors", torch::tensor(anchors).view({na, 4}));
  net.register_buffer("mean", torch::tensor({0.5f, 0.5f, 0.5f}).view({1, 3, 1, 1}));
  net.register_buffer("std", torch::tensor({0.25f, 0.25f, 0.25f}).view({1, 3, 1, 1}));
  net.register_attribute("input_size", c10::IntType::get(), S);
  net.register_attribute("score_thresh", c10::FloatType::get(), 0.01);
  net.register_attribute("nms_thresh", c10::FloatType::get(), 0.45);
  net.register_attribute("topk_candidates", c10::IntType::get(), int64_t{400});
  net.register_attribute("detections_per_img", c10::IntType::get(), int64_t{100});
  // train_forward: a batch already resized to S x S in [0, 1] -> class logits [N, A, classes] and
  // box offsets [N, A, 4] (SSD encoding, variances 0.1 / 0.2). forward: torchvision's detector
  // convention (images of any size in [0, 1] -> (losses, detections), boxes in each image's
  // 0-based pixel coordinates, labels 1..classes-1, 0 = background).
  net.define(R"(
def train_forward(self, x):
    return self.features((x - self.mean) / self.std)

def decode(self, rel):
    a = self.anchors
    cx = a[:, 0] + rel[:, :, 0] * 0.1 * a[:, 2]
    cy = a[:, 1] + rel[:, :, 1] * 0.1 * a[:, 3]
    w = a[:, 2] * torch.exp(torch.clamp(rel[:, :, 2] * 0.2, -8.0, 8.0))
    h = a[:, 3] * torch.exp(torch.clamp(rel[:, :, 3] * 0.2, -8.0, 8.0))
    s = float(self.input_size)
    boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], 2)
    return torch.clamp(boxes, 0.0, s)

def forward(self, images: List[Tensor]):
    s = self.input_size
    batch: List[Tensor] = []
    sizes: List[List[int]] = []
    for img in images:
        sizes.append([img.size(1), img.size(2)])
        batch.append(torch.upsample_bilinear2d(img.unsqueeze(0), [s, s], False, None, None))
    x = torch.cat(batch, 0)
    cls, rel = self.train_forward(x)
    scores = torch.softmax(cls, 2)
    boxes = self.decode(rel)
    results: List[Dict[str, Tensor]] = []
    for i in range(len(images)):
        sc = scores[i][:, 1:]
        nc = sc.size(1)
        flat = sc.reshape(-1)
        idx = torch.nonzero(flat > self.score_thresh).squeeze(1)
        if idx.numel() > self.topk_candidates:
            top = torch.topk(flat[idx], self.topk_candidates)
            idx = idx[top[1]]
        conf = flat[idx]
        anchor = torch.div(idx, nc, rounding_mode='floor')
        label = torch.remainder(idx, nc) + 1
        bx = boxes[i][anchor]
        shifted = bx + (label.to(bx.dtype) * (float(s) + 1.0)).unsqueeze(1)
        keep = torchvision.nms(shifted, conf, self.nms_thresh)
        keep = keep[:self.detections_per_img]
        h = float(sizes[i][0])
        w = float(sizes[i][1])
        scale = torch.tensor([w / float(s), h / float(s), w / float(s), h / float(s)])
        results.append({"boxes": bx[keep] * scale, "scores": conf[keep], "labels": label[keep]})
    losses: Dict[str, Tensor] = {}
    return (losses, results)
)",
             std::make_shared<TorchvisionResolver>());
  return net;
}

}  // namespace

const std::vector<std::string>& known_archs() {
  static const std::vector<std::string> names = {"resnet20", "mobilenetv2", "ssdlite"};
  return names;
}

Arch parse_arch(const std::string& arch) {
  if (arch == "resnet20") return Arch::kResnet20;
  if (arch == "mobilenetv2") return Arch::kMobilenetV2;
  if (arch == "ssdlite") return Arch::kSsdlite;
  throw ConfigError("unknown arch '" + arch + "' (known: resnet20, mobilenetv2, ssdlite)");
}

bool is_detector_arch(const std::string& arch) {
  return parse_arch(arch) == Arch::kSsdlite;
}

Module build_model(const ArchConfig& cfg) {
  if (!(cfg.width > 0)) throw ConfigError("width must be > 0, got " + std::to_string(cfg.width));
  Builder b;
  Module net;
  if (cfg.arch == "resnet20")
    net = resnet20(cfg, b);
  else if (cfg.arch == "mobilenetv2")
    net = mobilenetv2(cfg, b);
  else if (cfg.arch == "ssdlite") {
    ensure_nms_registered();  // its forward calls torchvision::nms
    net = ssdlite(cfg, b);
  } else
    throw ConfigError("unknown arch '" + cfg.arch + "' (known: resnet20, mobilenetv2, ssdlite)");
  c10::List<int64_t> shape(cfg.input_shape);
  net.register_attribute("input_shape", c10::ListType::ofInts(), shape);
  nlohmann::json meta = {{"arch", cfg.arch},
                         {"width", cfg.width},
                         {"num_classes", cfg.num_classes},
                         {"input_shape", cfg.input_shape},
                         {"stem_stride", cfg.stem_stride}};
  net.register_attribute("mpq_meta", c10::StringType::get(), meta.dump());
  net.train(true);
  return net;
}

}  // namespace mpq::model
