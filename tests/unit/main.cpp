// Catch2 entry point for the unit tests (no MPI here; MPI tests have their own main). With
// Catch2 v3 the main comes from Catch2::Catch2WithMain (tests/CMakeLists.txt) and this file is
// empty.
#if !__has_include(<catch2/catch_all.hpp>)
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#endif
