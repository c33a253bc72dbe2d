// The one include of Catch2 for the unit tests, written once for Catch2 v2 (Debian 12: the single
// header catch2/catch.hpp, CATCH_CONFIG_MAIN) and v3 (Debian 13: catch2/catch_all.hpp, the main
// from Catch2::Catch2WithMain, Approx and the matchers in namespaces). Tests use Approx,
// Catch::Contains and the macros; this header makes those names mean the same in both.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#include <string>

using Catch::Approx;
namespace Catch {
/// v2's Catch::Contains: the message contains `s`.
inline Matchers::StringContainsMatcher Contains(const std::string& s) {
  return Matchers::ContainsSubstring(s);
}
}  // namespace Catch
#define MPQ_CATCH_V3 1
#else
#include <catch2/catch.hpp>
#endif
