#include "mpq/util/allocator.h"

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>

namespace mpq {

std::string allocator_description() {
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  const auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  if (!mallctl) return "glibc malloc";
  const char* version = nullptr;
  size_t len = sizeof version;
  if (mallctl("version", &version, &len, nullptr, 0) != 0 || !version) return "jemalloc";
  std::string s = std::string("jemalloc ") + version;
  ssize_t dirty = 0, muzzy = 0;
  len = sizeof dirty;
  if (mallctl("opt.dirty_decay_ms", &dirty, &len, nullptr, 0) == 0 &&
      mallctl("opt.muzzy_decay_ms", &muzzy, &len, nullptr, 0) == 0)
    s += " (dirty_decay_ms " + std::to_string(dirty) + ", muzzy_decay_ms " + std::to_string(muzzy) +
         ")";
  return s;
}

}  // namespace mpq
