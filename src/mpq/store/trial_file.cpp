#include "mpq/store/trial_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "mpq/store/h5.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"

namespace mpq::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string layer_group_name(int index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d", index);
  return buf;
}

void write_layer(const h5::File& f, h5::Id layers, const LayerRecord& L) {
  auto g = h5::create_group(f, layers, layer_group_name(L.index));
  json attrs = L.attrs;
  attrs["index"] = L.index;
  attrs["max_points"] = L.max_points;
  attrs["d"] = L.d;
  h5::write_attrs(f, g.id(), attrs);
  auto C = static_cast<int64_t>(L.points_per_channel.size());
  auto P = static_cast<int64_t>(L.scales.size());
  auto K = static_cast<int64_t>(L.max_points);
  MPQ_ASSERT(static_cast<int64_t>(L.codes.size()) == P * L.d, "codes size");
  MPQ_ASSERT(static_cast<int64_t>(L.point_channel.size()) == P, "point_channel size");
  h5::write_dataset(f, g.id(), "points_per_channel", {C}, L.points_per_channel.data());
  h5::write_dataset(f, g.id(), "codes", {P, L.d}, L.codes.data());
  h5::write_dataset(f, g.id(), "scales", {P}, L.scales.data());
  h5::write_dataset(f, g.id(), "point_channel", {P}, L.point_channel.data());
  if (!L.weight_error.empty())
    h5::write_dataset(f, g.id(), "weight_error", {C, K}, L.weight_error.data());
  if (!L.output_error.empty())
    h5::write_dataset(f, g.id(), "output_error", {C, K}, L.output_error.data());
  if (!L.grant_order.empty())
    h5::write_dataset(f, g.id(), "grant_order", {C, K}, L.grant_order.data());
  if (!L.channel_bits.empty())
    h5::write_dataset(f, g.id(), "bits_per_channel", {C}, L.channel_bits.data());
  if (!L.ocs_source.empty())
    h5::write_dataset(f, g.id(), "ocs_source", {static_cast<int64_t>(L.ocs_source.size())},
                      L.ocs_source.data());
}

}  // namespace

void write_trial(const std::string& path, const TrialRecord& r) {
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir))
    throw ConfigError(path + ": output directory " + dir.string() + " does not exist");
  AtomicFile out(path);
  {
    {
      h5::File f = h5::File::create(out.tmp());
      h5::Id root = f.id();
      h5::write_attrs(f, root,
                      {{"format", "mpq-trial"},
                       {"format_version", kTrialFormatVersion},
                       {"trial_id", r.trial_id}});
      h5::write_string_dataset(f, root, "config", r.config.dump(2));
      {
        auto m = h5::create_group(f, root, "manifest");
        h5::write_attrs(f, m.id(), r.manifest);
        auto n = static_cast<int64_t>(r.calibration_indices.size());
        h5::write_dataset(f, m.id(), "calibration_indices", {n}, r.calibration_indices.data());
        if (!r.eval_indices.empty()) {
          auto e = static_cast<int64_t>(r.eval_indices.size());
          h5::write_dataset(f, m.id(), "eval_indices", {e}, r.eval_indices.data());
        }
      }
      {
        auto m = h5::create_group(f, root, "metrics");
        h5::write_attrs(f, m.id(), r.metrics);
      }
      if (!r.arrays.empty()) {
        auto g = h5::create_group(f, root, "results");
        for (const auto& a : r.arrays) {
          h5::write_dataset(f, g.id(), a.name, a.shape, a.values.data());
          auto ds = h5::open_dataset(f, g.id(), a.name);
          h5::write_attr(f, ds.id(), "description", a.description);
        }
      }
      {
        auto layers = h5::create_group(f, root, "layers");
        h5::write_attr(f, layers.id(), "count", static_cast<int64_t>(r.layers.size()));
        for (const auto& L : r.layers) write_layer(f, layers.id(), L);
      }
      h5::write_attr(f, root, "status", "complete");  // last: marks the content complete
      f.flush();
      f.close();
    }
    out.commit();
  }
}

TrialRecord read_trial(const std::string& path, TrialParts parts) {
  const bool arrays = parts != TrialParts::kSummary, codes = parts == TrialParts::kAll;
  if (!fs::exists(path)) throw InputError(path + ": no such trial file");
  h5::File f = h5::File::open_read(path);
  h5::Id root = f.id();
  if (!h5::has_attr(root, "format") || h5::read_string_attr(f, root, "format") != "mpq-trial")
    throw InputError(path + ": not an mpq trial file (no format=\"mpq-trial\" attribute)");
  if (!h5::has_attr(root, "status") || h5::read_string_attr(f, root, "status") != "complete")
    throw InputError(path + ": incomplete trial file (status is not \"complete\")");
  TrialRecord r;
  json top = h5::read_attrs(f, root);
  if (top.value("format_version", 0) > kTrialFormatVersion)
    throw InputError(path + ": written by a newer mpq (format_version " +
                     std::to_string(top.value("format_version", 0)) + ")");
  r.trial_id = top.value("trial_id", "");
  try {
    r.config = json::parse(h5::read_string_dataset(f, root, "config"));
  } catch (const json::exception&) {
    throw InputError(path + ": /config is not valid JSON");
  }
  {
    auto m = h5::open_group(f, root, "manifest");
    r.manifest = h5::read_attrs(f, m.id());
    r.calibration_indices = h5::read_dataset<int64_t>(f, m.id(), "calibration_indices");
    if (h5::exists(m.id(), "eval_indices"))
      r.eval_indices = h5::read_dataset<int64_t>(f, m.id(), "eval_indices");
  }
  {
    auto m = h5::open_group(f, root, "metrics");
    r.metrics = h5::read_attrs(f, m.id());
  }
  if (arrays && h5::exists(root, "results")) {
    auto g = h5::open_group(f, root, "results");
    for (const auto& name : h5::children(f, g.id())) {
      NamedArray a;
      a.name = name;
      a.values = h5::read_dataset<double>(f, g.id(), name, &a.shape);
      r.arrays.push_back(std::move(a));
    }
  }
  auto layers = h5::open_group(f, root, "layers");
  for (const auto& name : h5::children(f, layers.id())) {
    auto g = h5::open_group(f, layers.id(), name);
    LayerRecord L;
    L.attrs = h5::read_attrs(f, g.id());
    L.index = L.attrs.value("index", 0);
    L.max_points = L.attrs.value("max_points", 1);
    L.d = L.attrs.value("d", int64_t{0});
    L.points_per_channel = h5::read_dataset<int32_t>(f, g.id(), "points_per_channel");
    if (codes) {
      L.codes = h5::read_dataset<int8_t>(f, g.id(), "codes");
      L.scales = h5::read_dataset<float>(f, g.id(), "scales");
      L.point_channel = h5::read_dataset<int32_t>(f, g.id(), "point_channel");
    }
    if (arrays) {
      if (h5::exists(g.id(), "weight_error"))
        L.weight_error = h5::read_dataset<float>(f, g.id(), "weight_error");
      if (h5::exists(g.id(), "output_error"))
        L.output_error = h5::read_dataset<float>(f, g.id(), "output_error");
      if (h5::exists(g.id(), "grant_order"))
        L.grant_order = h5::read_dataset<int32_t>(f, g.id(), "grant_order");
      if (h5::exists(g.id(), "bits_per_channel"))
        L.channel_bits = h5::read_dataset<int8_t>(f, g.id(), "bits_per_channel");
      if (h5::exists(g.id(), "ocs_source"))
        L.ocs_source = h5::read_dataset<int64_t>(f, g.id(), "ocs_source");
    }
    r.layers.push_back(std::move(L));
  }
  return r;
}

bool validate_trial(const std::string& path, std::string* why) {
  try {
    read_trial(path, false);
    return true;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

}  // namespace mpq::store
