#include "mpq/util/threads.h"

#include <ATen/Parallel.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "mpq/util/blas.h"
#include "mpq/util/error.h"

namespace mpq {

int default_threads() {
  // MPQ_THREADS overrides the default (not an explicit --threads / threads_per_rank).
  if (const char* env = std::getenv("MPQ_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
      throw ConfigError(std::string("MPQ_THREADS=") + env +
                        ": expected an integer in [1, 4096] (threads per process)");
    return static_cast<int>(n);
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  int cores = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  // A mask smaller than the machine means mpirun/Slurm already bound this rank to its share.
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online > 0 && cores < online) return cores < 1 ? 1 : cores;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  int ranks = local ? std::atoi(local) : 1;
  if (ranks < 1) ranks = 1;
  int n = cores / ranks;
  return n < 1 ? 1 : n;
}

int apply_threads(int n) {
  if (n <= 0) n = default_threads();
  at::set_num_threads(n);
  omp_set_num_threads(n);
  use_single_threaded_blas();  // util/blas.h: results must not depend on BLAS's own pool
  return n;
}

}  // namespace mpq
