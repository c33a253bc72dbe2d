#include <algorithm>
#include <cstring>
#include <numeric>

#include "mpq/eval/task.h"
#include "mpq/util/error.h"

namespace mpq::eval {

// Layout: "mpq-shard-v1\n" {"n","skipped","seconds","tensors":[{"name","dtype","shape"}]} "\n"
// followed by the tensors' raw bytes (contiguous, native little-endian) in that order.
std::string pack_shard(const EvalShard& s) {
  nlohmann::json head = {{"n", s.n},
                         {"skipped", s.skipped},
                         {"seconds", s.seconds},
                         {"tensors", nlohmann::json::array()}};
  std::string body;
  for (const auto& [name, t] : s.tensors) {
    auto c = t.contiguous();
    head["tensors"].push_back(
        {{"name", name}, {"dtype", static_cast<int>(c.scalar_type())}, {"shape", c.sizes().vec()}});
    body.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  }
  return "mpq-shard-v1\n" + head.dump() + "\n" + body;
}

EvalShard unpack_shard(const std::string& bytes) {
  const std::string magic = "mpq-shard-v1\n";
  MPQ_ASSERT(bytes.compare(0, magic.size(), magic) == 0, "not a packed shard");
  const size_t nl = bytes.find('\n', magic.size());
  MPQ_ASSERT(nl != std::string::npos, "packed shard without a header");
  auto head = nlohmann::json::parse(bytes.substr(magic.size(), nl - magic.size()));
  EvalShard s;
  s.n = head["n"];
  s.skipped = head["skipped"];
  s.seconds = head["seconds"];
  size_t off = nl + 1;
  for (const auto& t : head["tensors"]) {
    auto type = static_cast<c10::ScalarType>(t["dtype"].get<int>());
    auto x = torch::empty(t["shape"].get<std::vector<int64_t>>(), torch::TensorOptions(type));
    MPQ_ASSERT(off + x.nbytes() <= bytes.size(), "packed shard cut short");
    std::memcpy(x.data_ptr(), bytes.data() + off, x.nbytes());
    off += x.nbytes();
    s.tensors[t["name"].get<std::string>()] = x;
  }
  return s;
}

EvalShard concat_shards(const std::vector<EvalShard>& shards) {
  EvalShard out;
  if (shards.empty()) return out;
  for (const auto& s : shards) {
    out.n += s.n;
    out.skipped += s.skipped;
    out.seconds += s.seconds;
  }
  // Empty shards carry placeholders whose trailing dimensions may differ (an evaluator cannot
  // know a model's number of outputs before running it): they contribute nothing.
  const EvalShard* first = &shards.front();
  for (const auto& s : shards)
    if (s.n > 0) {
      first = &s;
      break;
    }
  for (const auto& [name, t] : first->tensors) {
    std::vector<torch::Tensor> parts;
    for (const auto& s : shards)
      if (s.n > 0) parts.push_back(s.tensors.at(name));
    out.tensors[name] = parts.empty() ? t : torch::cat(parts, 0);
  }
  return out;
}

EvalShard slice_shard(const EvalShard& s, int64_t begin, int64_t end) {
  const auto& pos = s.tensors.at("positions");
  auto keep = ((pos >= begin) & (pos < end)).nonzero().view({-1});
  EvalShard out;
  out.n = keep.size(0);
  out.seconds = s.seconds;
  for (const auto& [name, t] : s.tensors) out.tensors[name] = t.index_select(0, keep);
  return out;
}

// Layout: "mpq-stats-v1\n" {"names","rows","skipped"} "\n" then the int64 positions and the
// float64 values (native little-endian).
std::string pack_example_stats(const ExampleStats& s) {
  MPQ_ASSERT(s.values.size() == s.positions.size() * s.names.size(), "example stats shape");
  const nlohmann::json head = {
      {"names", s.names}, {"rows", s.positions.size()}, {"skipped", s.skipped}};
  std::string out = "mpq-stats-v1\n" + head.dump() + "\n";
  out.append(reinterpret_cast<const char*>(s.positions.data()), s.positions.size() * 8);
  out.append(reinterpret_cast<const char*>(s.values.data()), s.values.size() * 8);
  return out;
}

ExampleStats unpack_example_stats(const std::string& bytes) {
  const std::string magic = "mpq-stats-v1\n";
  MPQ_ASSERT(bytes.compare(0, magic.size(), magic) == 0, "not packed example statistics");
  const size_t nl = bytes.find('\n', magic.size());
  MPQ_ASSERT(nl != std::string::npos, "packed example statistics without a header");
  const auto head = nlohmann::json::parse(bytes.substr(magic.size(), nl - magic.size()));
  ExampleStats s;
  s.names = head["names"].get<std::vector<std::string>>();
  s.skipped = head["skipped"];
  const size_t rows = head["rows"];
  s.positions.resize(rows);
  s.values.resize(rows * s.names.size());
  const size_t need = nl + 1 + 8 * (s.positions.size() + s.values.size());
  MPQ_ASSERT(bytes.size() == need, "packed example statistics cut short");
  std::memcpy(s.positions.data(), bytes.data() + nl + 1, 8 * rows);
  std::memcpy(s.values.data(), bytes.data() + nl + 1 + 8 * rows, 8 * s.values.size());
  return s;
}

std::map<std::string, double> sum_in_position_order(const std::vector<ExampleStats>& parts) {
  std::map<std::string, double> totals;
  if (parts.empty()) return totals;
  const auto& names = parts.front().names;
  struct Row {
    int64_t position;
    const double* values;
  };
  std::vector<Row> rows;
  double skipped = 0;
  for (const auto& p : parts) {
    MPQ_ASSERT(p.names == names, "example statistics with different columns");
    skipped += static_cast<double>(p.skipped);
    for (size_t i = 0; i < p.positions.size(); ++i)
      rows.push_back({p.positions[i], p.values.data() + i * names.size()});
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.position < b.position; });
  for (size_t i = 1; i < rows.size(); ++i)
    MPQ_ASSERT(rows[i].position != rows[i - 1].position, "an example counted twice");
  for (size_t j = 0; j < names.size(); ++j) {
    double sum = 0;
    for (const auto& r : rows) sum += r.values[j];
    totals[names[j]] = sum;
  }
  totals["n"] = static_cast<double>(rows.size());
  totals["skipped"] = skipped;
  return totals;
}

}  // namespace mpq::eval
