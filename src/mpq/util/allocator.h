// The memory allocator of mpq's processes, for provenance.
//
// Every mpq executable (the CLI, the unit tests, the benchmarks) links jemalloc (Debian's
// libjemalloc2) with page purging off: `malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1"`,
// compiled into the executable (src/tools/malloc_conf.c), so no environment variable is needed.
// Why: glibc's malloc hands every large tensor back to the kernel (mmap/munmap above its mmap
// threshold, trimming below), and each evaluation batch then page-faults its memory in again;
// measured on a 2-core AMD EPYC, a whole default-MobileNetV2 trial spent 75-85% of its time in
// the kernel (bench/bench_allocator.sh, docs/benchmarks.md "Allocator"). The cost: a process
// keeps the peak of its heap resident until it exits.
#pragma once

#include <string>

namespace mpq {

/// "jemalloc 5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c (dirty_decay_ms -1,
/// muzzy_decay_ms -1)" when jemalloc serves malloc; "glibc malloc" otherwise (a binary built
/// without it, or a library loaded into another program).
std::string allocator_description();

}  // namespace mpq
