// Stop requests from the outside world (Slurm, the user) as flags the work loops poll:
//   SIGUSR1           "the time limit is near": stop taking new work, finish or hand back the
//                     current trial, exit so the job can be requeued (Slurm's --signal=B:USR1@s,
//                     forwarded by mpq's batch scripts)
//   SIGTERM / SIGINT  "stop now" (scancel, preemption, Ctrl-C): release claims and exit promptly
// Handlers only set atomic flags (async-signal-safe); callers act on them.
#pragma once

namespace mpq {

/// Installs the handlers (idempotent).
void install_stop_handlers();
/// SIGUSR1 received.
bool stop_requested();
/// Seconds since the first SIGUSR1 (0 if none).
double seconds_since_stop_request();
/// SIGTERM or SIGINT received.
bool terminate_requested();
/// For tests and benchmarks: as if the signal had arrived.
void request_stop();

}  // namespace mpq
