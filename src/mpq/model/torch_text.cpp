#include "mpq/model/torch_text.h"

#include <vector>

namespace mpq::model {

// One line from an error message. Errors raised inside a TorchScript graph read "The following
// operation failed in the TorchScript interpreter. Traceback of TorchScript ... RuntimeError:
// <the actual problem>" (a std::runtime_error from the interpreter): keep the actual problem.
std::string one_line(const std::string& m) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= m.size()) {
    size_t nl = m.find('\n', start);
    std::string line = m.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  if (lines.empty()) return "unknown error";
  if (m.find("TorchScript interpreter") != std::string::npos ||
      m.find("Traceback of TorchScript") != std::string::npos) {
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      auto colon = it->find("Error: ");
      if (colon != std::string::npos && it->find(' ') > colon) return it->substr(colon + 7);
    }
    return lines.back();
  }
  return lines.front();
}

std::string short_message(const c10::Error& e) {
  return one_line(e.what_without_backtrace());
}

namespace {

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

std::string describe(const c10::IValue& v, int depth) {
  if (v.isTensor()) return "Tensor " + shape_of(v.toTensor());
  if (depth >= 3) return v.tagKind();
  auto items = [&](const auto& elements, size_t max) {
    std::string s;
    size_t i = 0;
    for (const auto& e : elements) {
      if (i == max) return s + ", ...";
      s += (i++ ? ", " : "") + describe(e, depth + 1);
    }
    return s;
  };
  if (v.isTuple()) return "Tuple[" + items(v.toTupleRef().elements(), 4) + "]";
  if (v.isList()) {
    const auto l = v.toListRef();
    return "List (" + std::to_string(l.size()) + ")[" + items(l, 3) + "]";
  }
  if (v.isGenericDict()) {
    std::string keys;
    size_t i = 0;
    for (const auto& kv : v.toGenericDict()) {
      if (i == 6) {
        keys += ", ...";
        break;
      }
      const c10::IValue& k = kv.key();
      keys += (i++ ? ", " : "") + (k.isString() ? k.toStringRef() : k.tagKind());
    }
    return "Dict with keys " + (keys.empty() ? std::string("(none)") : keys);
  }
  return v.tagKind();
}

}  // namespace

std::string describe_value(const c10::IValue& v) {
  return describe(v, 0);
}

}  // namespace mpq::model
