// TrialDistribution over MPI_COMM_WORLD (layer-parallel sweeps, docs/sweeps.md).
//
// Layers go to ranks by longest-processing-time-first on their estimated cost (params x max
// points), ties to the lowest rank, so the split is the same on every rank. Tables and finished
// layers are exchanged with allgather of serialized buffers (serialize.h).
#pragma once

#include "mpq/sweep/trial.h"

namespace mpq::sweep {

class MpiTrialDistribution : public TrialDistribution {
 public:
  MpiTrialDistribution(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::vector<int> assign(const std::vector<int>& todo, const std::vector<double>& cost) override;
  std::vector<quant::LayerTables> share_tables(
      const std::vector<int>& todo, const std::map<int, quant::LayerTables>& mine) override;
  std::vector<ptq::LayerOutcome> share_layers(
      const std::vector<int>& todo, const std::map<int, ptq::LayerOutcome>& mine) override;
  void agree(const std::string& my_error, bool config_error = false) override;
  void allreduce_sum(double* values, int n) override;
  std::vector<std::string> allgather(const std::string& mine) override;

 private:
  int rank_, size_;
};

/// Which rank gets each layer (LPT); exposed for tests.
std::vector<int> lpt_assignment(const std::vector<double>& cost, int ranks);

}  // namespace mpq::sweep
