// Declarative JSON schemas for mpq configs (trial, train, sweep base).
//
// A Schema is a flat list of leaf fields addressed by JSON pointers ("/weights/bits"). resolve()
// checks a user document against it and returns the fully resolved document (every default
// filled in), or throws ConfigError listing *every* problem, one per line, each as
//   <source>: <json pointer>: <what was expected>, got <what was found>
// Unknown keys are errors (a typo must never silently fall back to a default).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mpq {

enum class FieldType { kBool, kInt, kNumber, kString, kChoice, kIntList, kNumberList };

struct Field {
  std::string pointer;  ///< JSON pointer of the leaf, e.g. "/weights/bits"
  FieldType type = FieldType::kString;
  nlohmann::json default_value;  ///< used when the key is absent
  double min = -1e308;           ///< inclusive range for kInt/kNumber (and list elements)
  double max = 1e308;
  std::vector<std::string> choices;  ///< allowed values for kChoice
  std::string help;                  ///< one line for docs and --help
};

class Schema {
 public:
  Schema& boolean(const std::string& ptr, bool def, const std::string& help);
  Schema& integer(const std::string& ptr, long long def, long long min, long long max,
                  const std::string& help);
  Schema& number(const std::string& ptr, double def, double min, double max,
                 const std::string& help);
  Schema& string(const std::string& ptr, const std::string& def, const std::string& help);
  Schema& choice(const std::string& ptr, const std::string& def,
                 const std::vector<std::string>& choices, const std::string& help);
  Schema& int_list(const std::string& ptr, const std::vector<long long>& def, long long min,
                   long long max, const std::string& help);
  Schema& number_list(const std::string& ptr, const std::vector<double>& def, double min,
                      double max, const std::string& help);

  /// Validates `user` (an object) and fills defaults. `source` names the input in messages
  /// (a file path, or "command line"). Throws ConfigError with all problems found.
  nlohmann::json resolve(const nlohmann::json& user, const std::string& source) const;

  /// Collects problems without throwing (used by sweep validation to report every trial's
  /// problems at once). Each entry is "<pointer>: <message>".
  std::vector<std::string> check(const nlohmann::json& user, nlohmann::json* resolved) const;

  /// True if `ptr` names a leaf or an interior object of this schema.
  bool knows(const std::string& ptr) const;
  const Field* find(const std::string& ptr) const;
  const std::vector<Field>& fields() const { return fields_; }

  /// A Markdown table of every field (pointer, type, default, range, help) for docs/--help.
  std::string markdown() const;

 private:
  std::vector<Field> fields_;
};

/// Reads a JSON file; throws InputError if unreadable, ConfigError (with line/column) if the
/// text is not valid JSON.
nlohmann::json read_json_file(const std::string& path);

/// Applies "key.path=value" or "/key/path=value" overrides to `doc`. The value is parsed as
/// JSON when it is valid JSON (numbers, true/false, lists, quoted strings) and taken as a plain
/// string otherwise. Throws ConfigError for a malformed assignment.
void apply_override(nlohmann::json& doc, const std::string& assignment);

/// Converts "a.b.c" or "/a/b/c" to the JSON pointer "/a/b/c".
std::string to_pointer(const std::string& key);

/// Short human description of a JSON value's type and value for messages: `string "abc"`.
std::string describe_value(const nlohmann::json& v);

}  // namespace mpq
