#include "mpq/sweep/mpi_session.h"

#include <mpi.h>

#include "mpq/util/error.h"

namespace mpq::sweep {

MpiSession::MpiSession(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    owner_ = true;
    if (provided < MPI_THREAD_SERIALIZED)
      throw InputError(
          "the MPI library does not provide MPI_THREAD_SERIALIZED, which mpq sweeps need");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiSession::~MpiSession() {
  if (owner_) MPI_Finalize();
}

void mpi_send_string(const std::string& s, int dest, int tag) {
  MPI_Send(s.data(), static_cast<int>(s.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD);
}

std::string mpi_recv_string(int source, int tag, int* from) {
  MPI_Status st;
  MPI_Probe(source < 0 ? MPI_ANY_SOURCE : source, tag, MPI_COMM_WORLD, &st);
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  std::string s(static_cast<size_t>(n), '\0');
  MPI_Recv(s.data(), n, MPI_CHAR, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (from) *from = st.MPI_SOURCE;
  return s;
}

bool mpi_probe(int tag, int* source) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st);
  if (flag && source) *source = st.MPI_SOURCE;
  return flag != 0;
}

void mpi_bcast_string(std::string& s, int root) {
  long long n = static_cast<long long>(s.size());
  MPI_Bcast(&n, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD);
  s.resize(static_cast<size_t>(n));
  // MPI counts are int: send in chunks for very large payloads.
  const long long chunk = 1 << 30;
  for (long long off = 0; off < n; off += chunk) {
    int len = static_cast<int>(std::min(chunk, n - off));
    MPI_Bcast(s.data() + off, len, MPI_CHAR, root, MPI_COMM_WORLD);
  }
}

void mpi_barrier() {
  MPI_Barrier(MPI_COMM_WORLD);
}

void mpi_allreduce_sum(double* values, int n) {
  MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

std::vector<std::string> mpi_gather_strings(const std::string& mine, int root) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int n = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
  std::string all;
  if (rank == root) {
    int total = 0;
    for (int i = 0; i < size; ++i) {
      displs[static_cast<size_t>(i)] = total;
      total += counts[static_cast<size_t>(i)];
    }
    all.resize(static_cast<size_t>(total));
  }
  MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, root,
              MPI_COMM_WORLD);
  std::vector<std::string> out;
  if (rank == root)
    for (int i = 0; i < size; ++i)
      out.push_back(all.substr(static_cast<size_t>(displs[static_cast<size_t>(i)]),
                               static_cast<size_t>(counts[static_cast<size_t>(i)])));
  return out;
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace mpq::sweep
