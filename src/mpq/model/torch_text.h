// The texts mpq makes of LibTorch's errors and values: one line from an error (the actual problem
// of a TorchScript interpreter traceback), and a short description of a model's output (its
// structure and shapes), for error messages that name what a model really returned.
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>

#include <string>

namespace mpq::model {

/// One line from an error message: the first non-empty line, or for errors raised inside a
/// TorchScript graph (a traceback), the actual problem after the last "...Error: ".
std::string one_line(const std::string& message);

/// one_line of a c10::Error without its C++ backtrace.
std::string short_message(const c10::Error& e);

/// A short description of a value: "Tensor [2, 10]", "Tuple[Tensor [2, 10], Tensor [2, 4]]",
/// "Dict[str, Tensor] with keys logits", "List[Tensor] (3)", "int", ...; nested at most 3 deep.
std::string describe_value(const c10::IValue& v);

}  // namespace mpq::model
