// Thread counts. LibTorch starts with one intra-op thread here, so mpq always sets the count
// explicitly. The default is every core this process may run on (sched_getaffinity), divided
// by the number of MPI ranks sharing the node (OMPI_COMM_WORLD_LOCAL_SIZE) when under mpirun.
#pragma once

namespace mpq {

/// Cores available to this process divided among the ranks on this node; at least 1.
int default_threads();

/// Sets LibTorch's intra-op threads and OpenMP's threads to `n` (n <= 0: default_threads()).
/// Returns the count set.
int apply_threads(int n);

}  // namespace mpq
