#include "mpq/sweep/mpi_distribution.h"

#include <algorithm>
#include <numeric>

#include "mpq/sweep/mpi_session.h"
#include "mpq/sweep/serialize.h"
#include "mpq/util/error.h"

namespace mpq::sweep {

std::vector<int> lpt_assignment(const std::vector<double>& cost, int ranks) {
  std::vector<size_t> order(cost.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  std::vector<int> owner(cost.size(), 0);
  for (size_t i : order) {
    int best = 0;
    for (int r = 1; r < ranks; ++r)
      if (load[static_cast<size_t>(r)] < load[static_cast<size_t>(best)]) best = r;
    owner[i] = best;
    load[static_cast<size_t>(best)] += cost[i];
  }
  return owner;
}

std::vector<int> MpiTrialDistribution::assign(const std::vector<int>& todo,
                                              const std::vector<double>& cost) {
  auto owner = lpt_assignment(cost, size_);
  std::vector<int> mine;
  for (size_t i = 0; i < todo.size(); ++i)
    if (owner[i] == rank_) mine.push_back(todo[i]);
  return mine;
}

namespace {
// Every rank's buffer, in rank order, on every rank.
std::vector<std::string> allgather_strings(const std::string& mine) {
  auto parts = mpi_gather_strings(mine, 0);
  std::string all;
  if (!parts.empty()) {
    for (const auto& p : parts) {
      write_int(all, static_cast<int64_t>(p.size()));
      all += p;
    }
  }
  mpi_bcast_string(all, 0);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    auto n = static_cast<size_t>(read_int(all, pos));
    out.push_back(all.substr(pos, n));
    pos += n;
  }
  return out;
}
}  // namespace

namespace {
// Every rank's (layer -> item) entries merged on every rank, returned in `todo` order.
template <typename T, typename Write, typename Read>
std::vector<T> share(const std::vector<int>& todo, const std::map<int, T>& mine, Write write,
                     Read read, const char* what) {
  std::string buf;
  for (const auto& [i, item] : mine) {
    write_int(buf, i);
    write(buf, item);
  }
  std::map<int, T> all;
  for (const auto& part : allgather_strings(buf)) {
    size_t pos = 0;
    while (pos < part.size()) {
      int i = static_cast<int>(read_int(part, pos));
      all[i] = read(part, pos);
    }
  }
  std::vector<T> out;
  for (int i : todo) {
    MPQ_ASSERT(all.count(i), what);
    out.push_back(std::move(all[i]));
  }
  return out;
}
}  // namespace

std::vector<quant::LayerTables> MpiTrialDistribution::share_tables(
    const std::vector<int>& todo, const std::map<int, quant::LayerTables>& mine) {
  return share(todo, mine, write_tables, read_tables,
               "a layer's tables are missing after allgather");
}

std::vector<ptq::LayerOutcome> MpiTrialDistribution::share_layers(
    const std::vector<int>& todo, const std::map<int, ptq::LayerOutcome>& mine) {
  return share(todo, mine, write_outcome, read_outcome,
               "a quantized layer is missing after allgather");
}

void MpiTrialDistribution::agree(const std::string& my_error, bool config_error) {
  double flag = my_error.empty() ? 0.0 : 1.0;
  mpi_allreduce_sum(&flag, 1);
  if (flag == 0.0) return;
  // The first character carries the kind, so a config error stays a config error (exit 2).
  const std::string mine = my_error.empty() ? "" : (config_error ? "C" : "I") + my_error;
  for (const auto& e : allgather_strings(mine)) {
    if (e.empty()) continue;
    if (e[0] == 'C') throw ConfigError(e.substr(1));
    throw InputError(e.substr(1));
  }
  throw InputError("a rank failed");
}

void MpiTrialDistribution::allreduce_sum(double* values, int n) {
  mpi_allreduce_sum(values, n);
}

std::vector<std::string> MpiTrialDistribution::allgather(const std::string& mine) {
  return allgather_strings(mine);
}

}  // namespace mpq::sweep
