#include "mpq/util/schema.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mpq/util/error.h"

namespace mpq {
using nlohmann::json;

namespace {

std::string fmt_number(double v) {
  // Integral bounds in full ("1099511627776", not "1.09951e+12"); others as the stream prints them.
  if (std::fabs(v) < 9.0e15 && v == std::floor(v)) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string expected_text(const Field& f) {
  switch (f.type) {
    case FieldType::kBool:
      return "must be true or false";
    case FieldType::kInt:
      return "must be an integer in [" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
    case FieldType::kNumber:
      return "must be a number in [" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
    case FieldType::kString:
      return "must be a string";
    case FieldType::kChoice: {
      std::string s = "must be one of";
      for (size_t i = 0; i < f.choices.size(); ++i) s += (i ? ", \"" : " \"") + f.choices[i] + "\"";
      return s;
    }
    case FieldType::kIntList:
      return "must be a list of integers in [" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
    case FieldType::kNumberList:
      return "must be a list of numbers in [" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
  }
  return "";
}

bool is_integer(const json& v) {
  if (v.is_number_integer()) return true;
  // Accept 4.0 but not 4.5: configs written by scripts often carry floats.
  return v.is_number_float() && std::isfinite(v.get<double>()) &&
         std::floor(v.get<double>()) == v.get<double>();
}

bool in_range(double x, const Field& f) {
  return std::isfinite(x) && x >= f.min && x <= f.max;
}

// Returns "" if `v` is valid for `f`, else the problem; `out` receives the normalized value.
std::string check_leaf(const Field& f, const json& v, json* out) {
  std::string bad = expected_text(f) + ", got " + describe_value(v);
  switch (f.type) {
    case FieldType::kBool:
      if (!v.is_boolean()) return bad;
      *out = v;
      return "";
    case FieldType::kInt:
      if (!is_integer(v) || !in_range(v.get<double>(), f)) return bad;
      *out = static_cast<long long>(v.get<double>());
      return "";
    case FieldType::kNumber:
      if (!v.is_number() || !in_range(v.get<double>(), f)) return bad;
      *out = v.get<double>();
      return "";
    case FieldType::kString:
      if (!v.is_string()) return bad;
      *out = v;
      return "";
    case FieldType::kChoice:
      if (!v.is_string()) return bad;
      for (const auto& c : f.choices)
        if (v.get<std::string>() == c) {
          *out = v;
          return "";
        }
      return bad;
    case FieldType::kIntList:
    case FieldType::kNumberList: {
      if (!v.is_array()) return bad;
      json list = json::array();
      for (const auto& e : v) {
        bool ok = f.type == FieldType::kIntList ? is_integer(e) : e.is_number();
        if (!ok || !in_range(e.get<double>(), f)) return bad;
        if (f.type == FieldType::kIntList)
          list.push_back(static_cast<long long>(e.get<double>()));
        else
          list.push_back(e.get<double>());
      }
      *out = list;
      return "";
    }
  }
  return bad;
}

void walk_unknown(const json& node, const std::string& prefix, const Schema& schema,
                  std::vector<std::string>& problems) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string ptr = prefix + "/" + it.key();
    if (!schema.knows(ptr)) {
      problems.push_back(ptr + ": unknown key");
      continue;
    }
    const Field* leaf = schema.find(ptr);
    if (leaf == nullptr) {  // interior node: must be an object
      if (!it.value().is_object()) {
        problems.push_back(ptr + ": must be an object, got " + describe_value(it.value()));
        continue;
      }
      walk_unknown(it.value(), ptr, schema, problems);
    }
  }
}

}  // namespace

std::string describe_value(const json& v) {
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean " + text;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer " + text;
    case json::value_t::number_float:
      return "number " + text;
    case json::value_t::string:
      return "string " + text;
    case json::value_t::array:
      return "list " + text;
    case json::value_t::object:
      return "object " + text;
    default:
      return text;
  }
}

namespace {
Field make_field(const std::string& ptr, FieldType type, json def, double min, double max,
                 const std::string& help) {
  Field f;
  f.pointer = ptr;
  f.type = type;
  f.default_value = std::move(def);
  f.min = min;
  f.max = max;
  f.help = help;
  return f;
}
}  // namespace

Schema& Schema::boolean(const std::string& ptr, bool def, const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kBool, def, -1e308, 1e308, help));
  return *this;
}

Schema& Schema::integer(const std::string& ptr, long long def, long long min, long long max,
                        const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kInt, def, static_cast<double>(min),
                               static_cast<double>(max), help));
  return *this;
}

Schema& Schema::number(const std::string& ptr, double def, double min, double max,
                       const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kNumber, def, min, max, help));
  return *this;
}

Schema& Schema::string(const std::string& ptr, const std::string& def, const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kString, def, -1e308, 1e308, help));
  return *this;
}

Schema& Schema::choice(const std::string& ptr, const std::string& def,
                       const std::vector<std::string>& choices, const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kChoice, def, -1e308, 1e308, help));
  fields_.back().choices = choices;
  return *this;
}

Schema& Schema::int_list(const std::string& ptr, const std::vector<long long>& def, long long min,
                         long long max, const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kIntList, def, static_cast<double>(min),
                               static_cast<double>(max), help));
  return *this;
}

Schema& Schema::number_list(const std::string& ptr, const std::vector<double>& def, double min,
                            double max, const std::string& help) {
  fields_.push_back(make_field(ptr, FieldType::kNumberList, def, min, max, help));
  return *this;
}

const Field* Schema::find(const std::string& ptr) const {
  for (const auto& f : fields_)
    if (f.pointer == ptr) return &f;
  return nullptr;
}

bool Schema::knows(const std::string& ptr) const {
  for (const auto& f : fields_) {
    if (f.pointer == ptr) return true;
    if (f.pointer.size() > ptr.size() && f.pointer.compare(0, ptr.size(), ptr) == 0 &&
        f.pointer[ptr.size()] == '/')
      return true;
  }
  return false;
}

std::vector<std::string> Schema::check(const json& user, json* resolved) const {
  std::vector<std::string> problems;
  if (!user.is_object()) {
    problems.push_back("/: must be a JSON object, got " + describe_value(user));
    return problems;
  }
  walk_unknown(user, "", *this, problems);
  json out = json::object();
  for (const auto& f : fields_) {
    json::json_pointer jp(f.pointer);
    json value = f.default_value;
    bool present = false;
    try {
      present = user.contains(jp);
    } catch (const json::exception&) {
      present = false;  // a parent is not an object; already reported by walk_unknown
    }
    if (present) {
      json normalized;
      std::string problem = check_leaf(f, user.at(jp), &normalized);
      if (!problem.empty()) {
        problems.push_back(f.pointer + ": " + problem);
        continue;
      }
      value = normalized;
    }
    out[jp] = value;
  }
  if (resolved) *resolved = out;
  return problems;
}

json Schema::resolve(const json& user, const std::string& source) const {
  json resolved;
  auto problems = check(user, &resolved);
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size(); ++i) {
      if (i) msg += "\nmpq: ";
      msg += source + ": " + problems[i];
    }
    throw ConfigError(msg);
  }
  return resolved;
}

std::string Schema::markdown() const {
  std::string s = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const auto& f : fields_) {
    std::string type, allowed;
    switch (f.type) {
      case FieldType::kBool:
        type = "bool";
        break;
      case FieldType::kInt:
        type = "int";
        allowed = "[" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
        break;
      case FieldType::kNumber:
        type = "number";
        allowed = "[" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
        break;
      case FieldType::kString:
        type = "string";
        break;
      case FieldType::kChoice:
        type = "choice";
        for (size_t i = 0; i < f.choices.size(); ++i) allowed += (i ? ", " : "") + f.choices[i];
        break;
      case FieldType::kIntList:
        type = "int list";
        allowed = "[" + fmt_number(f.min) + ", " + fmt_number(f.max) + "]";
        break;
      case FieldType::kNumberList:
        type = "number list";
        break;
    }
    s += "| `" + f.pointer + "` | " + type + " | `" + f.default_value.dump() + "` | " + allowed +
         " | " + f.help + " |\n";
  }
  return s;
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return json::parse(buf.str());
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    std::string what = e.what();
    auto pos = what.find("] ");
    throw ConfigError(
        path + ": not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
}

std::string to_pointer(const std::string& key) {
  if (!key.empty() && key[0] == '/') return key;
  std::string p = "/";
  for (char c : key) p.push_back(c == '.' ? '/' : c);
  return p;
}

void apply_override(json& doc, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected key=value, e.g. --set weights.bits=4");
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;
  }
  try {
    doc[json::json_pointer(to_pointer(key))] = value;
  } catch (const json::exception&) {
    throw ConfigError("--set " + assignment + ": '" + key + "' is not a valid key path");
  }
}

}  // namespace mpq
