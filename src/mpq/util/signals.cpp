#include "mpq/util/signals.h"

#include <atomic>
#include <csignal>
#include <ctime>

namespace mpq {
namespace {

std::atomic<bool> g_stop{false}, g_term{false};
std::atomic<long long> g_stop_time_ns{0};

long long monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

extern "C" void on_usr1(int) {
  if (!g_stop.exchange(true)) g_stop_time_ns = monotonic_ns();
}
extern "C" void on_term(int) {
  g_term = true;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() {
  return g_stop.load();
}

double seconds_since_stop_request() {
  if (!g_stop.load()) return 0.0;
  return static_cast<double>(monotonic_ns() - g_stop_time_ns.load()) * 1e-9;
}

bool terminate_requested() {
  return g_term.load();
}

void request_stop() {
  on_usr1(SIGUSR1);
}

}  // namespace mpq
