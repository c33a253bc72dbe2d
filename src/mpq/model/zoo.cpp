#include "mpq/model/zoo.h"

#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

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

}  // namespace

const std::vector<std::string>& known_archs() {
  static const std::vector<std::string> names = {"resnet20", "mobilenetv2"};
  return names;
}

Module build_model(const ArchConfig& cfg) {
  if (!(cfg.width > 0)) throw ConfigError("width must be > 0, got " + std::to_string(cfg.width));
  Builder b;
  Module net;
  if (cfg.arch == "resnet20")
    net = resnet20(cfg, b);
  else if (cfg.arch == "mobilenetv2")
    net = mobilenetv2(cfg, b);
  else
    throw ConfigError("unknown arch '" + cfg.arch + "' (known: resnet20, mobilenetv2)");
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
