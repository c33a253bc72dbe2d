// Provenance recorded with every result (method.md §7): what code, which libraries, which
// machine, how many threads, when.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mpq {

struct BuildInfo {
  std::string git_commit;  ///< commit the binary was built from ("unknown" outside git)
  bool git_dirty = false;  ///< tracked files had uncommitted changes at build time
  std::string torch_version, hdf5_version, mpi_version, opencv_version, compiler;
  std::string cxx_standard;       ///< "C++17" or "C++20" (LibTorch 2.14 needs 20)
  bool torch_cuda_build = false;  ///< LibTorch was built with CUDA (PyPI's wheels are)
  bool cuda_available = false;    ///< a CUDA device is usable (mpq computes on the CPU anyway)
};

/// One paragraph for `mpq --version`: mpq, its commit, the libraries and whether CUDA is there.
std::string version_text();

/// Versions and git state of this build (constant for the process).
const BuildInfo& build_info();

/// Host name of this machine.
std::string host_name();

/// Current UTC time as ISO 8601 with milliseconds, e.g. "2026-11-25T17:09:13.123Z".
std::string utc_now_iso();

/// Build info + host as a JSON object (keys: git_commit, git_dirty, torch_version, hdf5_version,
/// mpi_version, opencv_version, compiler, host, allocator, blas; onednn_max_cpu_isa,
/// dnnl_max_cpu_isa and openblas_coretype when set; under Slurm also slurm_job_id,
/// slurm_array_job_id, slurm_array_task_id, slurm_restart_count).
nlohmann::json provenance_json();

}  // namespace mpq
