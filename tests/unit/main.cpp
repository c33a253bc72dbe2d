// Catch2 entry point for the unit tests (no MPI here; MPI tests have their own main).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
