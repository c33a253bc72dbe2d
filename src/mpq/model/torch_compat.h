// The LibTorch APIs that differ between the versions mpq builds against, in one place
// (docs/toolchains.md): Debian 12's LibTorch 1.13.1, Debian 13's 2.6 and the LibTorch inside
// PyPI's torch 2.14 wheel (scripts/build.sh --torch pip). Everything else in mpq is written once
// against the API these versions share; a version check belongs here and nowhere else.
//
//   warnings   1.13: WarningHandler::process(SourceLocation, msg, verbatim) and
//                    c10::Warning::set_warning_handler;
//              2.x:  WarningHandler::process(const c10::Warning&) and
//                    c10::WarningUtils::set_warning_handler (since PyTorch 2.0)
//   fuser      2.x profiling executors compile TensorExpr (NNC/LLVM) kernels on the first
//              forwards of a graph: minutes per graph in LibTorch 2.6 (real-models.md); mpq turns
//              the fuser off in every version (it gains nothing for mpq's frozen graphs).
#pragma once

#include <c10/util/Exception.h>
#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/version.h>

#include <string>

#define MPQ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mpq::model::compat {

/// A warning handler written once: implement on_warning(message).
class WarningHandler : public c10::WarningHandler {
 public:
  virtual void on_warning(const std::string& message) = 0;
#if MPQ_TORCH_AT_LEAST(2, 0)
  void process(const c10::Warning& warning) override {
    on_warning(warning.msg());
  }
#else
  void process(const c10::SourceLocation&, const std::string& message, const bool) override {
    on_warning(message);
  }
#endif
};

/// Installs `handler` for the process (c10's global handler).
inline void set_warning_handler(c10::WarningHandler* handler) {
#if MPQ_TORCH_AT_LEAST(2, 0)
  c10::WarningUtils::set_warning_handler(handler);
#else
  c10::Warning::set_warning_handler(handler);
#endif
}

/// Turns off the TensorExpr fuser for TorchScript graphs run in this process.
inline void disable_tensorexpr_fuser() {
  torch::jit::setTensorExprFuserEnabled(false);
}

}  // namespace mpq::model::compat
