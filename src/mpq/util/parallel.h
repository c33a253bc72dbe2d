// A minimal dynamic parallel loop on plain std::threads, for I/O-bound work (image decoding)
// that must not use LibTorch's intra-op pool (which the forward pass owns).
#pragma once

#include <cstdint>
#include <functional>

namespace mpq {

/// Calls fn(i) for every i in [0, n) on `workers` threads (workers <= 1: inline), each thread
/// taking the next i when it finishes one. If any call throws, the remaining work is abandoned
/// and the first exception (in time) is rethrown after every thread stopped.
void parallel_for(int64_t n, int workers, const std::function<void(int64_t)>& fn);

}  // namespace mpq
