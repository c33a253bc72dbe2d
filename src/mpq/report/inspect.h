// Human-readable summaries for `mpq inspect`: a model's quantizable layers, or a trial file.
#pragma once

#include <string>

#include "mpq/model/network.h"
#include "mpq/store/trial_file.h"

namespace mpq::report {

/// Layers in execution order with kind, weight shape, groups, input shape, params and MACs,
/// then totals and the BN folding count.
std::string describe_network(const model::Network& net);

/// Trial id, status, method settings, model/data provenance, metrics and a per-layer table.
std::string describe_trial(const std::string& path, const store::TrialRecord& r);

}  // namespace mpq::report
