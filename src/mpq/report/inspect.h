// Human-readable summaries for `mpq inspect`: a model's quantizable layers, or a trial file.
#pragma once

#include <string>

#include "mpq/model/network.h"
#include "mpq/store/trial_file.h"

namespace mpq::report {

/// Layers in execution order with kind, weight shape, groups, input shape, params and MACs,
/// then totals and the BN folding count.
std::string describe_network(const model::Network& net);

/// Runs `samples` random inputs of the network's input shape through the original archive
/// (eval mode, unfolded) and through `net`, and reports the largest absolute and relative
/// output difference: "BN folding check: max |diff| 3.1e-07 (relative 1.2e-08) on 4 inputs".
/// Sets *max_rel to the relative difference.
std::string check_folding(model::Network& net, int samples, double* max_rel);

/// Trial id, status, method settings, model/data provenance, metrics and a per-layer table.
std::string describe_trial(const std::string& path, const store::TrialRecord& r);

}  // namespace mpq::report
