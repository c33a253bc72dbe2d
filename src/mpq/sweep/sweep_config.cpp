#include "mpq/sweep/sweep_config.h"

#include <map>
#include <regex>

#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::sweep {
using nlohmann::json;

namespace {

// One dimension of the expansion: a list of "assignments" (partial trial configs to merge).
struct Dimension {
  std::vector<json> patches;   // each a partial trial config
  std::vector<json> settings;  // flat description of each patch for tables
};

void deep_merge(json& into, const json& patch) {
  for (const auto& [k, v] : patch.items()) {
    if (v.is_object() && into.contains(k) && into[k].is_object())
      deep_merge(into[k], v);
    else
      into[k] = v;
  }
}

void flatten(const json& obj, const std::string& prefix, json& out) {
  for (const auto& [k, v] : obj.items()) {
    std::string key = prefix.empty() ? k : prefix + "." + k;
    if (v.is_object())
      flatten(v, key, out);
    else
      out[key] = v;
  }
}

std::string dotted(const std::string& ptr) {
  std::string s = ptr.substr(1);
  for (auto& c : s)
    if (c == '/') c = '.';
  return s;
}

// Checks one axis value against the trial schema field at `ptr`; "" if fine.
std::string check_value(const std::string& ptr, const json& value) {
  const Schema& schema = trial_schema();
  json doc = json::object();
  doc[json::json_pointer(ptr)] = value;
  auto problems = schema.check(doc, nullptr);
  if (problems.empty()) return "";
  std::string p = problems.front();
  auto colon = p.find(": ");
  return colon == std::string::npos ? p : p.substr(colon + 2);
}

// A {"key", "values"} pair; problems reported under `at`.
bool parse_keyed(const json& axis, const std::string& at, std::string* ptr, const json** values,
                 std::vector<std::string>& problems) {
  bool ok = true;
  for (const auto& [k, v] : axis.items())
    if (k != "key" && k != "values") {
      problems.push_back(at + "/" + k + ": unknown key (an axis has \"key\" and \"values\")");
      ok = false;
    }
  if (!axis.contains("key") || !axis["key"].is_string()) {
    problems.push_back(at +
                       "/key: must be a string naming a trial config key, e.g. \"weights.bits\"");
    return false;
  }
  *ptr = to_pointer(axis["key"].get<std::string>());
  if (!trial_schema().find(*ptr)) {
    problems.push_back(at + "/key: '" + axis["key"].get<std::string>() +
                       "' is not a trial config key (see docs/configs.md)");
    ok = false;
  }
  if (!axis.contains("values") || !axis["values"].is_array()) {
    problems.push_back(at + "/values: must be a list");
    return false;
  }
  if (axis["values"].empty()) {
    problems.push_back(at + "/values: must not be empty");
    return false;
  }
  *values = &axis["values"];
  if (!ok) return false;
  for (size_t j = 0; j < (*values)->size(); ++j) {
    std::string why = check_value(*ptr, (**values)[j]);
    if (!why.empty()) {
      problems.push_back(at + "/values/" + std::to_string(j) + ": " + *ptr + ": " + why);
      ok = false;
    }
  }
  return ok;
}

bool parse_axis(const json& axis, const std::string& at, Dimension& dim,
                std::vector<std::string>& problems) {
  if (!axis.is_object()) {
    problems.push_back(
        at +
        ": must be an object ({\"key\", \"values\"}, {\"zip\": [...]} or {\"variants\": [...]})");
    return false;
  }
  if (axis.contains("zip")) {
    if (axis.size() != 1) problems.push_back(at + ": a zip axis has only the \"zip\" key");
    const json& z = axis["zip"];
    if (!z.is_array() || z.empty()) {
      problems.push_back(at + "/zip: must be a non-empty list of {\"key\", \"values\"}");
      return false;
    }
    std::vector<std::string> ptrs(z.size());
    std::vector<const json*> lists(z.size(), nullptr);
    bool ok = true;
    for (size_t i = 0; i < z.size(); ++i) {
      std::string sub = at + "/zip/" + std::to_string(i);
      if (!z[i].is_object()) {
        problems.push_back(sub + ": must be an object with \"key\" and \"values\"");
        ok = false;
        continue;
      }
      ok = parse_keyed(z[i], sub, &ptrs[i], &lists[i], problems) && ok;
    }
    if (!ok) return false;
    size_t n = lists[0]->size();
    for (size_t i = 1; i < lists.size(); ++i)
      if (lists[i]->size() != n) {
        problems.push_back(at + "/zip/" + std::to_string(i) + "/values: has " +
                           std::to_string(lists[i]->size()) + " values but /zip/0/values has " +
                           std::to_string(n) + " (zipped lists must have equal lengths)");
        return false;
      }
    for (size_t j = 0; j < n; ++j) {
      json patch = json::object(), set = json::object();
      for (size_t i = 0; i < lists.size(); ++i) {
        patch[json::json_pointer(ptrs[i])] = (*lists[i])[j];
        set[dotted(ptrs[i])] = (*lists[i])[j];
      }
      dim.patches.push_back(patch);
      dim.settings.push_back(set);
    }
    return true;
  }
  if (axis.contains("variants")) {
    if (axis.size() != 1)
      problems.push_back(at + ": a variants axis has only the \"variants\" key");
    const json& v = axis["variants"];
    if (!v.is_array() || v.empty()) {
      problems.push_back(at + "/variants: must be a non-empty list of partial trial configs");
      return false;
    }
    bool ok = true;
    for (size_t j = 0; j < v.size(); ++j) {
      std::string sub = at + "/variants/" + std::to_string(j);
      if (!v[j].is_object()) {
        problems.push_back(sub + ": must be an object (a partial trial config)");
        ok = false;
        continue;
      }
      for (const auto& p : trial_schema().check(v[j], nullptr)) {
        problems.push_back(sub + p);
        ok = false;
      }
      json set = json::object();
      flatten(v[j], "", set);
      dim.patches.push_back(v[j]);
      dim.settings.push_back(set);
    }
    return ok;
  }
  std::string ptr;
  const json* values = nullptr;
  if (!parse_keyed(axis, at, &ptr, &values, problems)) return false;
  for (const auto& value : *values) {
    json patch = json::object();
    patch[json::json_pointer(ptr)] = value;
    dim.patches.push_back(patch);
    dim.settings.push_back(json{{dotted(ptr), value}});
  }
  return true;
}

[[noreturn]] void throw_problems(const std::string& source,
                                 const std::vector<std::string>& problems) {
  constexpr size_t kShown = 10;  // a sweep of thousands of trials can have thousands of problems
  std::string msg;
  for (size_t i = 0; i < problems.size() && i < kShown; ++i)
    msg += (i ? "\nmpq: " : "") + source + ": " + problems[i];
  if (problems.size() > kShown)
    msg += "\nmpq: " + source + ": ... and " + std::to_string(problems.size() - kShown) +
           " more problems";
  throw ConfigError(msg);
}

}  // namespace

const char* run_mode_name(RunMode m) {
  return m == RunMode::kLayers ? "layers" : "trials";
}

std::string sweep_fingerprint(const json& document) {
  json d = document;
  if (d.is_object()) d.erase("run");
  return sha256_hex(d.dump());
}

namespace {

/// /run: how the sweep runs (not part of its identity); problems appended.
void parse_run(const json& r, SweepRunOptions& run, std::vector<std::string>& problems) {
  if (!r.is_object()) {
    problems.push_back("/run: must be an object");
    return;
  }
  for (const auto& [k, v] : r.items()) {
    if (k == "mode") {
      if (!v.is_string() || (v != "trials" && v != "layers"))
        problems.push_back("/run/mode: must be \"trials\" or \"layers\", got " + describe_value(v));
      else
        run.mode = v == "layers" ? RunMode::kLayers : RunMode::kTrials;
    } else if (k == "max_attempts") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 100)
        problems.push_back("/run/max_attempts: must be an integer in [1, 100], got " +
                           describe_value(v));
      else
        run.max_attempts = v.get<int>();
    } else if (k == "threads_per_rank") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 4096)
        problems.push_back("/run/threads_per_rank: must be an integer in [0, 4096], got " +
                           describe_value(v));
      else
        run.threads_per_rank = v.get<int>();
    } else if (k == "lease_seconds") {
      if (!v.is_number() || v.get<double>() < 2 || v.get<double>() > 86400)
        problems.push_back("/run/lease_seconds: must be a number in [2, 86400], got " +
                           describe_value(v));
      else
        run.lease_seconds = v.get<double>();
    } else if (k == "fp_check") {
      if (!v.is_string() || (v != "error" && v != "warn" && v != "off"))
        problems.push_back("/run/fp_check: must be \"error\", \"warn\" or \"off\", got " +
                           describe_value(v));
      else
        run.fp_check = v == "warn"  ? FpCheckMode::kWarn
                       : v == "off" ? FpCheckMode::kOff
                                    : FpCheckMode::kError;
    } else if (k == "fp_check_tolerance") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 100)
        problems.push_back("/run/fp_check_tolerance: must be a number of points in [0, 100], got " +
                           describe_value(v));
      else
        run.fp_check_tolerance = v.get<double>();
    } else if (k == "fp_check_samples") {
      if (!v.is_string() || v.get<std::string>().empty())
        problems.push_back("/run/fp_check_samples: must be a non-empty path");
      else
        run.fp_check_samples = v.get<std::string>();
    } else if (k == "results_dir") {
      if (!v.is_string() || v.get<std::string>().empty())
        problems.push_back("/run/results_dir: must be a non-empty string");
      else
        run.results_dir = v.get<std::string>();
    } else {
      problems.push_back(
          "/run/" + k +
          ": unknown key (run has mode, max_attempts, threads_per_rank, lease_seconds, "
          "fp_check, fp_check_tolerance, fp_check_samples, results_dir)");
    }
  }
}

/// /seeds: the innermost dimension (seed and calibration.seed); problems appended.
Dimension parse_seeds(const json& s, std::vector<std::string>& problems) {
  Dimension d;
  if (!s.is_array() || s.empty()) {
    problems.push_back("/seeds: must be a non-empty list of integers >= 0");
    return d;
  }
  for (size_t j = 0; j < s.size(); ++j) {
    if (!s[j].is_number_integer() || s[j].get<int64_t>() < 0) {
      problems.push_back("/seeds/" + std::to_string(j) + ": must be an integer >= 0, got " +
                         describe_value(s[j]));
      continue;
    }
    d.patches.push_back(json{{"seed", s[j]}, {"calibration", {{"seed", s[j]}}}});
    d.settings.push_back(json{{"seed", s[j]}});
  }
  return d;
}

/// The cartesian product of the dimensions over `base` (first axis slowest), each trial resolved
/// and checked; a duplicate is a problem. Appends to spec.trials and problems.
void expand_trials(const json& base, const std::vector<Dimension>& dims, const std::string& source,
                   SweepSpec& spec, std::vector<std::string>& problems) {
  // Cartesian product, first axis slowest.
  size_t total = 1;
  for (const auto& d : dims) total *= d.patches.size();
  if (total > 1000000)
    throw_problems(source,
                   {"/axes: expands to " + std::to_string(total) + " trials (limit 1000000)"});
  std::vector<size_t> idx(dims.size(), 0);
  std::map<std::string, int> seen;
  for (size_t t = 0; t < total; ++t) {
    json cfg = base, settings = json::object();
    for (size_t a = 0; a < dims.size(); ++a) {
      deep_merge(cfg, dims[a].patches[idx[a]]);
      for (const auto& [k, v] : dims[a].settings[idx[a]].items()) settings[k] = v;
    }
    std::string where = "trial " + std::to_string(t) + " " + settings.dump();
    json resolved;
    auto ps = trial_schema().check(cfg, &resolved);
    if (ps.empty()) ps = complete_trial_config(resolved);
    TrialConfig typed;
    if (ps.empty()) {
      typed = parse_trial_config(resolved);
      ps = check_trial_semantics(typed);
    }
    for (const auto& p : ps) problems.push_back(where + ": " + p);
    if (ps.empty()) {
      std::string key = trial_identity(typed).dump() + "|" + typed.model.path;
      auto [it, inserted] = seen.emplace(key, static_cast<int>(t));
      if (!inserted)
        problems.push_back(
            where + ": duplicates trial " + std::to_string(it->second) + " " +
            spec.trials[static_cast<size_t>(it->second)].settings.dump() +
            " (the axes set the same config twice, or vary a setting this trial's method "
            "does not use)");
      ExpandedTrial e;
      e.index = static_cast<int>(t);
      e.config = resolved;
      e.settings = settings;
      spec.trials.push_back(e);
    } else {
      ExpandedTrial e;  // keep indices aligned for duplicate messages
      e.index = static_cast<int>(t);
      e.settings = settings;
      spec.trials.push_back(e);
    }
    for (size_t a = dims.size(); a-- > 0;) {  // odometer increment, last axis fastest
      if (++idx[a] < dims[a].patches.size()) break;
      idx[a] = 0;
    }
  }
}

}  // namespace

SweepSpec parse_sweep(const json& doc, const std::string& source) {
  std::vector<std::string> problems;
  SweepSpec spec;
  spec.source = source;
  spec.document = doc;
  if (!doc.is_object()) throw_problems(source, {"/: must be a JSON object"});
  for (const auto& [k, v] : doc.items())
    if (k != "name" && k != "description" && k != "base" && k != "axes" && k != "seeds" &&
        k != "run" && k != "vars")
      problems.push_back(
          "/" + k + ": unknown key (a sweep has name, description, vars, base, axes, seeds, run)");

  if (!doc.contains("name") || !doc["name"].is_string() ||
      !std::regex_match(doc["name"].get<std::string>(), std::regex("[A-Za-z0-9_.-]+")) ||
      doc["name"].get<std::string>()[0] == '.')
    problems.push_back(
        "/name: must be a non-empty string of letters, digits, '_', '-', '.' (it names the results "
        "directory)");
  else
    spec.name = doc["name"].get<std::string>();
  if (doc.contains("description") && !doc["description"].is_string())
    problems.push_back("/description: must be a string");

  json base = doc.value("base", json::object());
  if (!base.is_object()) {
    problems.push_back("/base: must be an object (a partial trial config)");
    base = json::object();
  } else {
    for (const auto& p : trial_schema().check(base, nullptr)) problems.push_back("/base" + p);
  }

  std::vector<Dimension> dims;
  if (doc.contains("axes")) {
    if (!doc["axes"].is_array()) {
      problems.push_back("/axes: must be a list of axes");
    } else {
      for (size_t i = 0; i < doc["axes"].size(); ++i) {
        Dimension d;
        if (parse_axis(doc["axes"][i], "/axes/" + std::to_string(i), d, problems))
          dims.push_back(d);
      }
    }
  }
  // Invalid seeds are problems: the sweep stops below, before its dimensions are used.
  if (doc.contains("seeds")) dims.push_back(parse_seeds(doc["seeds"], problems));
  if (doc.contains("run")) parse_run(doc["run"], spec.run, problems);
  if (!problems.empty()) throw_problems(source, problems);
  expand_trials(base, dims, source, spec, problems);
  if (!problems.empty()) throw_problems(source, problems);
  return spec;
}

namespace {
// Replaces ${NAME} in every string of `j` (recursively); `where` is the JSON pointer for messages.
void substitute(json& j, const std::map<std::string, std::string>& vars, const std::string& where,
                const std::string& source) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) substitute(v, vars, where + "/" + k, source);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      substitute(j[i], vars, where + "/" + std::to_string(i), source);
  } else if (j.is_string()) {
    std::string s = j.get<std::string>(), out;
    size_t pos = 0;
    while (true) {
      size_t at = s.find("${", pos);
      if (at == std::string::npos) break;
      size_t end = s.find('}', at);
      if (end == std::string::npos) break;
      const std::string name = s.substr(at + 2, end - at - 2);
      auto it = vars.find(name);
      if (it == vars.end())
        throw ConfigError(source + ": " + where + ": ${" + name +
                          "} is not a variable of this sweep (declare it in \"vars\")");
      if (it->second.empty())
        throw ConfigError(source + ": " + where + ": variable '" + name +
                          "' has no value: pass --var " + name + "=VALUE");
      out += s.substr(pos, at - pos) + it->second;
      pos = end + 1;
    }
    if (pos > 0) j = out + s.substr(pos);
  }
}
}  // namespace

json resolve_sweep_document(json doc, const SweepOverrides& o, const std::string& source) {
  if (!doc.is_object()) return doc;  // parse_sweep reports it
  std::map<std::string, std::string> vars;
  if (doc.contains("vars")) {
    if (!doc["vars"].is_object())
      throw ConfigError(source + ": /vars: must be an object of strings, got " +
                        describe_value(doc["vars"]));
    for (const auto& [k, v] : doc["vars"].items()) {
      if (!v.is_string())
        throw ConfigError(source + ": /vars/" + k + ": must be a string, got " + describe_value(v));
      vars[k] = v.get<std::string>();
    }
  }
  for (const auto& a : o.vars) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--var " + a + ": expected NAME=VALUE");
    const std::string name = a.substr(0, eq);
    if (!vars.count(name)) {
      std::string known;
      for (const auto& [k, v] : vars) known += (known.empty() ? "" : ", ") + k;
      throw ConfigError("--var " + a + ": the sweep has no variable '" + name +
                        "' (variables: " + (known.empty() ? "none" : known) + ")");
    }
    vars[name] = a.substr(eq + 1);
    doc["vars"][name] = vars[name];
  }
  for (auto& [k, v] : doc.items())
    if (k != "vars") substitute(v, vars, "/" + k, source);
  if (!o.sets.empty()) {
    if (!doc.contains("base")) doc["base"] = json::object();
    if (!doc["base"].is_object()) throw ConfigError(source + ": /base: must be an object");
    for (const auto& a : o.sets) apply_override(doc["base"], a);
  }
  if (o.ignore_fp_check) doc["run"]["fp_check"] = "warn";
  return doc;
}

SweepSpec load_sweep(const std::string& path, const SweepOverrides& overrides) {
  return parse_sweep(resolve_sweep_document(read_json_file(path), overrides, path), path);
}

}  // namespace mpq::sweep
