#include <c10/util/Exception.h>

#include <cstdio>

#include "mpq/util/error.h"
#include "mpq/util/schema.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
using nlohmann::json;

void add_config_args(CLI::App* app, ConfigArgs& a) {
  app->add_option("--config", a.config_path, "JSON config file (command-line options override it)");
  app->add_option("--set", a.sets,
                  "override any config key, e.g. --set weights.bits=3 (repeatable)");
}

void add_sweep_overrides(CLI::App* app, sweep::SweepOverrides& o) {
  app->add_option("--var", o.vars,
                  "value of a sweep variable, e.g. --var imagenet=/data/imagenet (repeatable)");
  app->add_option("--set", o.sets,
                  "override a key of every trial's config, e.g. --set data.root=/data/imagenet "
                  "(repeatable)");
  app->add_flag("--ignore-fp-check", o.ignore_fp_check,
                "proceed even if the FP model misses its published accuracy (run.fp_check=warn)");
}

json user_config(const ConfigArgs& a, const json& flags) {
  json doc = a.config_path.empty() ? json::object() : read_json_file(a.config_path);
  if (!doc.is_object())
    throw ConfigError(a.config_path + ": must contain a JSON object, got " + describe_value(doc));
  for (const auto& s : a.sets) apply_override(doc, s);
  for (const auto& [ptr, value] : flags.items()) doc[json::json_pointer(ptr)] = value;
  return doc;
}

std::string source_name(const ConfigArgs& a) {
  return a.config_path.empty() ? std::string("command line") : a.config_path;
}

int report_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "mpq: %s\n", e.what());
    return kExitUsage;
  } catch (const InputError& e) {
    std::fprintf(stderr, "mpq: %s\n", e.what());
    return kExitRuntime;
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    std::fprintf(stderr, "mpq: %s\n", m.substr(0, m.find('\n')).c_str());
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::string m = e.what();
    std::fprintf(stderr, "mpq: %s\n", m.substr(0, m.find('\n')).c_str());
    return kExitRuntime;
  } catch (...) {
    std::fprintf(stderr, "mpq: unknown error\n");
    return kExitRuntime;
  }
}

}  // namespace mpq::cli
