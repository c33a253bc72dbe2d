#include "mpq/util/parallel.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mpq {

void parallel_for(int64_t n, int workers, const std::function<void(int64_t)>& fn) {
  if (workers <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  auto run = [&] {
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= n || failed.load()) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  const int64_t t = std::min<int64_t>(workers, n);
  for (int64_t k = 1; k < t; ++k) threads.emplace_back(run);
  run();
  for (auto& th : threads) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace mpq
