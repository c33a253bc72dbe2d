// MPI for the sweep verbs (the only part of mpq that uses MPI). MpiSession initializes MPI with
// MPI_THREAD_MULTIPLE (rank 0 runs a scheduler thread beside its own trials) when it is not yet
// initialized, and finalizes it on destruction. Works without mpirun as a singleton (1 rank).
#pragma once

#include <string>
#include <vector>

namespace mpq::sweep {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  int rank_ = 0, size_ = 1;
  bool owner_ = false;
};

// Point-to-point and collective helpers on MPI_COMM_WORLD carrying strings.
void mpi_send_string(const std::string& s, int dest, int tag);
/// Receives from `source` (or any source when source < 0); returns the sender in *from.
std::string mpi_recv_string(int source, int tag, int* from);
/// Non-blocking check for a message with `tag` from any source.
bool mpi_probe(int tag, int* source);
/// Broadcasts `s` from `root` to all ranks (in place).
void mpi_bcast_string(std::string& s, int root);
void mpi_barrier();
/// Sum-reduces doubles to every rank (in place).
void mpi_allreduce_sum(double* values, int n);
/// Concatenates each rank's bytes at `root`, in rank order (other ranks get an empty result).
std::vector<std::string> mpi_gather_strings(const std::string& mine, int root);
/// Aborts every rank (used when one rank hits an unrecoverable state mid-protocol).
[[noreturn]] void mpi_abort(int code);

}  // namespace mpq::sweep
