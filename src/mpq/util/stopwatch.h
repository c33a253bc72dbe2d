#pragma once

#include <chrono>

namespace mpq {

/// Seconds of wall time (steady clock) since t0.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace mpq
