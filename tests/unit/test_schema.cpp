#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "mpq/sweep/trial_config.h"
#include "mpq/util/error.h"
#include "mpq/util/schema.h"
#include "torch_catch.h"

using mpq::ConfigError;
using mpq::Schema;
using nlohmann::json;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("schema fills defaults and normalizes values", "[config]") {
  json r = mpq::sweep::trial_schema().resolve(json::object(), "t.json");
  CHECK(r["weights"]["bits"] == 4);
  CHECK(r["weights"]["granularity"] == "per_channel");
  CHECK(r["model"]["path"] == "default:resnet20");
  json r2 =
      mpq::sweep::trial_schema().resolve(json::parse(R"({"weights": {"bits": 3.0}})"), "t.json");
  CHECK(r2["weights"]["bits"].is_number_integer());
  CHECK(r2["weights"]["bits"] == 3);
}

TEST_CASE("schema errors name the source, the JSON pointer and what was expected", "[config]") {
  const auto& s = mpq::sweep::trial_schema();
  CHECK(error_of([&] { s.resolve(json::parse(R"({"weights": {"bits": 1}})"), "t.json"); }) ==
        "t.json: /weights/bits: must be an integer in [2, 8], got integer 1");
  CHECK(error_of([&] {
          s.resolve(json::parse(R"({"weights": {"bits": 9}})"), "t.json");
        }).find("[2, 8]") != std::string::npos);
  CHECK(error_of([&] { s.resolve(json::parse(R"({"weights": {"bits": "4"}})"), "t.json"); }) ==
        "t.json: /weights/bits: must be an integer in [2, 8], got string \"4\"");
  CHECK(error_of([&] {
          s.resolve(json::parse(R"({"weights": {"bits": 4.5}})"), "t.json");
        }).find("got number 4.5") != std::string::npos);
  CHECK(error_of([&] { s.resolve(json::parse(R"({"weigths": {}})"), "t.json"); }) ==
        "t.json: /weigths: unknown key");
  CHECK(error_of([&] { s.resolve(json::parse(R"({"weights": {"bitz": 4}})"), "t.json"); }) ==
        "t.json: /weights/bitz: unknown key");
  CHECK(error_of([&] { s.resolve(json::parse(R"({"weights": 4})"), "t.json"); }) ==
        "t.json: /weights: must be an object, got integer 4");
  CHECK(error_of([&] {
          s.resolve(json::parse(R"({"weights": {"granularity": "per_tensor"}})"), "t.json");
        }).find("must be one of \"per_channel\", \"per_layer\"") != std::string::npos);
  CHECK(error_of([&] {
          s.resolve(json::parse(R"({"model": {"fold_bn": "yes"}})"), "t.json");
        }).find("/model/fold_bn: must be true or false") != std::string::npos);
  CHECK(error_of([&] {
          s.resolve(json::parse("[1, 2]"), "t.json");
        }).find("must be a JSON object") != std::string::npos);
}

TEST_CASE("schema reports every problem, not just the first", "[config]") {
  std::string e = error_of([&] {
    mpq::sweep::trial_schema().resolve(
        json::parse(R"({"weights": {"bits": 0, "granularity": 3}, "foo": 1})"), "t.json");
  });
  CHECK(e.find("/weights/bits") != std::string::npos);
  CHECK(e.find("/weights/granularity") != std::string::npos);
  CHECK(e.find("/foo: unknown key") != std::string::npos);
}

TEST_CASE("overrides accept dotted keys and JSON values", "[config]") {
  json doc = json::object();
  mpq::apply_override(doc, "weights.bits=3");
  mpq::apply_override(doc, "/weights/granularity=per_layer");
  mpq::apply_override(doc, "model.input_shape=[3,32,32]");
  mpq::apply_override(doc, "model.fold_bn=false");
  CHECK(doc["weights"]["bits"] == 3);
  CHECK(doc["weights"]["granularity"] == "per_layer");
  CHECK(doc["model"]["input_shape"] == json::array({3, 32, 32}));
  CHECK(doc["model"]["fold_bn"] == false);
  CHECK_THROWS_AS(mpq::apply_override(doc, "no-equals-sign"), ConfigError);
  CHECK_THROWS_AS(mpq::apply_override(doc, "=4"), ConfigError);
}

TEST_CASE("trial ids depend on results-relevant settings only", "[config]") {
  auto typed = [](const json& user, const char* source) {
    return mpq::sweep::parse_trial_config(mpq::sweep::resolve_trial_config(user, source));
  };
  const auto a = typed(json::object(), "a");
  const auto b = typed(json::parse(R"({"threads": 1, "output": "x.h5",
              "data": {"batch_size": 7, "max_batch_mb": 64, "root": "/elsewhere"},
              "model": {"path": "other.pt"}})"),
                       "b");
  CHECK(mpq::sweep::trial_id(a, "m", "d") == mpq::sweep::trial_id(b, "m", "d"));
  const auto c = typed(json::parse(R"({"weights": {"bits": 3}})"), "c");
  CHECK(mpq::sweep::trial_id(a, "m", "d") != mpq::sweep::trial_id(c, "m", "d"));
  CHECK(mpq::sweep::trial_id(a, "m", "d") != mpq::sweep::trial_id(a, "m2", "d"));
  CHECK(mpq::sweep::trial_id(a, "m", "d") != mpq::sweep::trial_id(a, "m", "d2"));
  CHECK(mpq::sweep::trial_id(a, "m", "d").size() == 64);
}

TEST_CASE("read_json_file reports syntax errors with position", "[config]") {
  std::string path = "/tmp/mpq_test_bad.json";
  {
    std::ofstream o(path);
    o << "{\n  \"weights\": {\"bits\": 4,}\n}\n";
  }
  std::string e = error_of([&] { mpq::read_json_file(path); });
  CHECK(e.find(path + ": not valid JSON") == 0);
  CHECK(e.find("line 2") != std::string::npos);
  CHECK_THROWS_AS(mpq::read_json_file("/nonexistent/x.json"), mpq::InputError);
}
