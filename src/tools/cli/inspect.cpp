// mpq inspect: a model's quantizable layers, or a trial file's content.
#include "mpq/report/inspect.h"

#include <cstdio>

#include "mpq/model/network.h"
#include "mpq/store/trial_file.h"
#include "mpq/util/error.h"
#include "mpq/util/threads.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> out;
  std::string cur;
  for (char c : text + ",") {
    if (c == ',' || c == 'x') {
      if (cur.empty()) break;
      try {
        out.push_back(std::stoll(cur));
      } catch (const std::exception&) {
        out.clear();
        break;
      }
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (out.size() != 3 || out[0] < 1 || out[1] < 1 || out[2] < 1)
    throw ConfigError("--input-shape " + text +
                      ": expected C,H,W with positive integers, e.g. 3,224,224");
  return out;
}

// What kind of file `path` is, by its signature: "hdf5", "zip" (TorchScript), or "".
std::string sniff(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  unsigned char b[8] = {0};
  size_t n = std::fread(b, 1, 8, f);
  std::fclose(f);
  if (n == 8 && b[0] == 0x89 && b[1] == 'H' && b[2] == 'D' && b[3] == 'F') return "hdf5";
  if (n >= 2 && b[0] == 'P' && b[1] == 'K') return "zip";
  return "";
}

class Inspect : public Verb {
 public:
  explicit Inspect(CLI::App& app)
      : Verb(app.add_subcommand("inspect",
                                "describe a model's quantizable layers or a trial result file")) {
    auto* c = command_;
    c->footer(
        "Examples:\n"
        "  mpq inspect results/models/resnet20-<key>.pt\n"
        "  mpq inspect resnet18_traced.pt --input-shape 3,224,224\n"
        "  mpq inspect results/trial.h5");
    c->add_option("file", path_, "TorchScript archive (.pt) or trial file (.h5)")->required();
    c->add_option("--input-shape", shape_,
                  "C,H,W for MACs (default: from the archive, else 3,224,224)");
    c->add_flag("--no-fold-bn", no_fold_, "do not fold BatchNorm before listing layers");
    c->add_flag("--check-fold", check_,
                "compare the prepared (BN-folded) model with the original on random inputs");
  }

  int run(int*, char***) override {
    if (sniff(path_) == "hdf5") {
      auto rec = store::read_trial(path_, false);
      std::fputs(report::describe_trial(path_, rec).c_str(), stdout);
      return kExitOk;
    }
    model::LoadOptions lo;
    lo.fold_bn = !no_fold_;
    if (!shape_.empty()) lo.input_shape = parse_shape(shape_);
    apply_threads(0);
    auto net = model::Network::load(path_, lo);
    std::fputs(report::describe_network(net).c_str(), stdout);
    if (check_) std::fputs(report::check_folding(net, 4, nullptr).c_str(), stdout);
    return kExitOk;
  }

 private:
  std::string path_, shape_;
  bool no_fold_ = false, check_ = false;
};

}  // namespace

void add_inspect(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Inspect>(app));
}

}  // namespace mpq::cli
