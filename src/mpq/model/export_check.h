// The self-check of an export (model/expand.h): save a rewritten graph, reload it and compare its
// outputs with the simulated network's on the check batch; refuse an export that computes
// something else, keep with a warning one whose difference float32 rounding explains.
#pragma once

#include <string>

#include "mpq/model/expand.h"

namespace mpq::model {

/// Saves `frozen` to path through a temporary name (the source archive's metadata travels with
/// it as the mpq_meta.json extra file), reloads it and compares it with `net` (run under
/// `sim_hook`) on `check_images` ([N, C, H, W]; undefined, or a list-input detector: a seeded
/// random batch). With bound > 0 a relative difference beyond it is classified: the simulation
/// run twice (check_repeat_diff) and under a kRoundingProbe input perturbation
/// (rounding_sensitivity, check_inconclusive). Throws InputError if the file cannot be written
/// or the reloaded model fails on the batch (the file is then removed).
ExportResult save_and_check(torch::jit::Module& frozen, Network& net, const std::string& path,
                            LayerInputHook* sim_hook, const torch::Tensor& check_images = {},
                            double bound = 0);

/// Within bound, or a detector whose box set changed: returns. Inconclusive (float32 rounding
/// explains the difference): warns once and keeps the file. Otherwise removes the file and
/// throws InputError naming the difference and its likely cause.
void refuse_if_different(const ExportResult& r, double bound);

}  // namespace mpq::model
