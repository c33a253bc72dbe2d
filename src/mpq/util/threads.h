// Thread counts. LibTorch starts with one intra-op thread here, so mpq always sets the count
// explicitly. The default is every core this process may run on (sched_getaffinity); when that
// mask is the whole machine and several MPI ranks share the node (OMPI_COMM_WORLD_LOCAL_SIZE),
// it is divided among them (a rank already bound to its cores by mpirun or Slurm keeps its mask).
// The environment variable MPQ_THREADS=N replaces that default (explicit counts still win).
#pragma once

namespace mpq {

/// MPQ_THREADS if set (ConfigError unless an integer in [1, 4096]); else the cores available to
/// this process divided among the ranks on this node; at least 1.
int default_threads();

/// Sets LibTorch's intra-op threads and OpenMP's threads to `n` (n <= 0: default_threads()) and
/// BLAS to one thread (util/blas.h explains why). Returns the count set.
int apply_threads(int n);

}  // namespace mpq
