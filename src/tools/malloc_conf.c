/* jemalloc's options for every mpq executable (src/mpq/util/allocator.h explains why): never
 * give freed pages back to the kernel, so a batch's tensors reuse memory that is already mapped.
 * jemalloc reads this global at its first allocation; it overrides the library's weak default. */
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1";
